"""``python -m benchmarks.run weights``: download (a real HTTP server on 127.0.0.1), the cache's checks,
refusing pickles that would run code, importing into the suite's checkpoint format, evaluating and
training from public weights.

The catalogue entries here are test entries added to ``baselines.weights.CHECKPOINTS``; the weights
are the random-weight fixtures of ``tests/fixtures`` (reduced-width MoViNets), and the registry's
``movinet_a0_stream`` is replaced by the fixtures' reduced model so that row 1 builds in milliseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest
import torch

import baselines
from baselines.movinet import MoViNet, MovinetSpec
from baselines.weights import CHECKPOINTS, GRW_AUTHORS_CONVERTER, Checkpoint
from benchmarks.core.store import Store
from benchmarks.engine import public_weights as weights
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import build_run_model, load_trained, resolve_spec
from benchmarks.run import main
from benchmarks.table1 import report
from benchmarks.table1.compare import compare
from benchmarks.table1.ledger import verdicts
from benchmarks.table1.specs import get_spec

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- a real HTTP server


class Server:
    """Serves ``content`` at /file on 127.0.0.1, honouring ``Range: bytes=N-``; with ``drops`` > 0 the
    next ``drops`` responses announce the whole length, send half of it and close the connection."""

    def __init__(self, content: bytes) -> None:
        self.content, self.drops, self.ranges = content, 0, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                wanted = self.headers.get("Range")
                server.ranges.append(wanted)
                start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
                body = server.content[start:]
                self.send_response(206 if wanted else 200)
                if wanted:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.content) - 1}/{len(server.content)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drops:
                    server.drops -= 1
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def tensor_file(path: Path) -> bytes:
    torch.save({"weight": torch.arange(150_000, dtype=torch.float32)}, path)  # ~600 kB
    return path.read_bytes()


def entry(name: str, url: str, **fields) -> Checkpoint:
    values = dict(name=name, model="movinet_a0_stream", dataset="Kinetics-600", num_classes=10, url=url,
                  source="test", top1=50.0, eval_input="8 x 32", converter="from_movinet_pytorch")
    return Checkpoint(**{**values, **fields})


@pytest.fixture
def no_proxy(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def served(tmp_path, monkeypatch, no_proxy):
    content = tensor_file(tmp_path / "weights.pt")
    with Server(content) as server:
        monkeypatch.setitem(CHECKPOINTS, "test_k600", entry("test_k600", server.url,
                                                            sha256=hashlib.sha256(content).hexdigest()))
        yield server


def download(cache: Path, *names: str, extra: tuple[str, ...] = ()) -> int:
    return main(["weights", "download", *names, "--cache-dir", str(cache), *extra])


def test_download_shows_progress_resumes_a_dropped_transfer_and_records_the_sha256(served, tmp_path, capsys):
    served.drops = 1
    cache = tmp_path / "cache"
    assert download(cache, "test_k600") == 0
    err = capsys.readouterr().err
    half = len(served.content) // 2
    assert served.ranges == [None, f"bytes={half}-"]  # the second request resumes where the first stopped
    assert "resuming (attempt 2 of 4)" in err and f"at {half} bytes" in err
    assert "100%" in err and f"{len(served.content) / 1e3:.0f}k" in err  # tqdm's bar, in bytes
    assert (cache / "test_k600").read_bytes() == served.content
    record = json.loads((cache / "test_k600.json").read_text())
    assert record["sha256"] == hashlib.sha256(served.content).hexdigest()
    assert record["size"] == len(served.content) and record["checked"] == ["sha256"]
    assert sorted(p.name for p in cache.iterdir()) == ["test_k600", "test_k600.json"]
    assert download(cache, "test_k600") == 0 and served.ranges == [None, f"bytes={half}-"]  # cached: no request
    capsys.readouterr()
    assert main(["weights", "list", "--cache-dir", str(cache)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert max(map(len, listing)) <= 120
    line, = [line for line in listing if line.startswith("test_k600 ")]
    assert line.split()[1:4] == ["movinet_a0_stream", "init", "1"]  # row 1 has a GRW head: init only
    assert f"sha256 {record['sha256'][:8]}" in line and line.split()[-2] == "yes"
    assert sum(bool(line.split()) and line.split()[0] in CHECKPOINTS for line in listing[2:]) == len(CHECKPOINTS)


def test_an_interrupted_download_leaves_only_the_part_file_and_the_next_command_resumes(served, tmp_path, capsys):
    served.drops = 1
    cache = tmp_path / "cache"
    assert download(cache, "test_k600", extra=("--retries", "0")) == 2
    half = len(served.content) // 2
    assert "run the same command again to resume" in capsys.readouterr().err
    assert sorted(p.name for p in cache.iterdir()) == [".test_k600.part"]  # nothing under the final name
    assert (cache / ".test_k600.part").stat().st_size == half
    assert download(cache, "test_k600") == 0
    assert served.ranges == [None, f"bytes={half}-"]
    assert (cache / "test_k600").read_bytes() == served.content


def test_a_sha256_mismatch_is_refused_and_the_file_kept_aside(served, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CHECKPOINTS, "test_k600", entry("test_k600", served.url, sha256="0" * 64))
    cache = tmp_path / "cache"
    assert download(cache, "test_k600") == 2
    err = capsys.readouterr().err
    assert "refused: sha256 " + hashlib.sha256(served.content).hexdigest() in err and "0" * 64 in err
    assert sorted(p.name for p in cache.iterdir()) == ["test_k600.rejected"]
    assert (cache / "test_k600.rejected").read_bytes() == served.content
    with pytest.raises(weights.WeightsError, match="weights download test_k600"):
        weights.cached_file("test_k600", cache)


def test_file_imports_a_copy_offline_with_the_same_checks(base_weights, tmp_path, monkeypatch, capsys):
    _, brought = base_weights
    content = brought.read_bytes()
    blob = hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()
    monkeypatch.setitem(CHECKPOINTS, "test_a0_k600", entry("test_a0_k600", "http://127.0.0.1:9/unreachable",
                                                           model="movinet_a0", git_blob_sha1=blob))
    cache = tmp_path / "cache"
    assert download(cache, "test_a0_k600", extra=("--file", str(brought))) == 0
    assert (cache / "test_a0_k600").read_bytes() == content
    record = json.loads((cache / "test_a0_k600.json").read_text())
    assert record["sha256"] == hashlib.sha256(content).hexdigest() and record["checked"] == ["git blob sha1"]
    assert record["origin"] == f"file {brought.resolve()}" and record["verified"] is True
    assert "checked: git blob sha1" in capsys.readouterr().out


# ---------------------------------------------------------------- pickles that would run code


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("converter", ["from_movinet_pytorch", GRW_AUTHORS_CONVERTER])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, monkeypatch, capsys, converter):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(3), "payload": RunsCode(marker)}, evil)
    grw = converter == GRW_AUTHORS_CONVERTER  # rows 1 (GRW head) and 2 (MoViNet-A0's classifier)
    monkeypatch.setitem(CHECKPOINTS, "evil", entry("evil", "http://127.0.0.1:9/x", converter=converter, grw_head=grw,
                                                   model="movinet_a0_stream" if grw else "movinet_a0"))
    cache = tmp_path / "cache"
    assert download(cache, "evil", extra=("--file", str(evil))) == 2
    err = capsys.readouterr().err
    assert "refused" in err and ("GLOBAL posix.system" in err or "refused global posix.system" in err)
    assert not marker.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["evil.rejected"]
    assert main(["weights", "import", "evil", "--file", str(evil), "--out", str(tmp_path / "x.pt")]) == 2
    assert "refused" in capsys.readouterr().err and not marker.exists() and not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- importing, evaluating, training from weights


def tiny_registry(monkeypatch, model: str, spec: MovinetSpec, stream: bool) -> None:
    """``baselines.build(model)`` builds the fixtures' reduced MoViNet (same code, fewer channels)."""

    def build(num_classes: int = 600, **options) -> MoViNet:
        return MoViNet(spec, stream=stream, num_classes=num_classes, **options)

    monkeypatch.setitem(baselines.MODELS, model, build)


@pytest.fixture
def base_weights(tmp_path, monkeypatch):
    """Catalogue entry ``test_a0_k600``: the reduced MoViNet-pytorch base fixture (10 classes), as a file."""
    fixture = torch.load(FIXTURES / "movinet_pytorch_base.pt", weights_only=True)
    tiny_registry(monkeypatch, "movinet_a0", MovinetSpec.from_dict(fixture["spec"]), stream=False)
    torch.save(fixture["state_dict"], tmp_path / "modelA0_statedict_v3")
    monkeypatch.setitem(CHECKPOINTS, "test_a0_k600", entry("test_a0_k600", "http://127.0.0.1:9/x", model="movinet_a0"))
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    return fixture, tmp_path / "modelA0_statedict_v3"


def test_import_then_load_trained_gives_the_reference_logits(base_weights, tmp_path, tiny_kinetics, capsys):
    fixture, file = base_weights
    out = tmp_path / "a0.pt"
    assert main(["weights", "import", "test_a0_k600", "--file", str(file), "--out", str(out)]) == 0
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["row"] == 2 and checkpoint["complete"] and checkpoint["ema"] is None
    assert checkpoint["classes"] == [f"class_{i:03d}" for i in range(10)]
    assert checkpoint["config"]["data"] == checkpoint["config"]["out"] == "imported"
    provenance = checkpoint["provenance"]
    assert provenance["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert (provenance["converter"], provenance["converter_version"]) == ("from_movinet_pytorch",
                                                                          baselines.CONVERTER_VERSION)
    assert provenance["classes_source"] == "placeholder" and provenance["verified"] is False  # no published hash
    assert provenance["label"].startswith("public weights (local file, sha256 ")
    assert "not verified" in provenance["label"]
    trained = load_trained(out)
    with torch.no_grad():
        logits = trained.model(fixture["frames"].float() / 255)
    assert (logits - fixture["logits"]).abs().max() <= 1e-4 and trained.weights == "raw"
    # no class names: eval refuses, saying how to give them
    code = main(["eval", "--row", "2", "--checkpoint", str(out), "--data", str(tiny_kinetics.root)])
    assert code == 2 and "imported without class names" in capsys.readouterr().err
    # with the class names of the data's folders (sorted) they are stored
    (tmp_path / "ten").mkdir()
    for name in [f"c{i}" for i in range(10)][::-1]:
        (tmp_path / "ten" / "val" / name).mkdir(parents=True)
    assert main(["weights", "import", "test_a0_k600", "--file", str(file), "--out", str(out), "--data",
                 str(tmp_path / "ten")]) == 0
    assert load_trained(out).classes == tuple(f"c{i}" for i in range(10))


def test_eval_weights_name_evaluates_the_public_weights_and_labels_the_run(base_weights, tmp_path, tiny_kinetics,
                                                                          capsys, monkeypatch):
    fixture, file = base_weights
    # row 2 at 8 frames of 32 px instead of 50 x 172 (the run records it as a deviation): seconds, not tens
    monkeypatch.setattr(weights, "resolve_spec", lambda config: resolve_spec(dataclasses.replace(config, frames=8,
                                                                                                 res=32)))
    eval_args = ["eval", "--row", "2", "--weights", "test_a0_k600", "--data", str(tiny_kinetics.root),
                 "--num-workers", "0", "--device", "cpu", "--index-cache", str(tmp_path), "--results",
                 str(tmp_path / "results")]
    assert main(eval_args) == 2  # not in the cache yet
    assert "weights download test_a0_k600" in capsys.readouterr().err
    assert main(["weights", "download", "test_a0_k600", "--file", str(file)]) == 0
    assert main(eval_args) == 2  # the data has 3 class folders, the weights 10 classes
    assert "the weights have 10 classes" in capsys.readouterr().err
    classes = [*tiny_kinetics.classes, *(f"other_{i}" for i in range(7))]
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    assert main([*eval_args, "--classes", str(tmp_path / "classes.txt")]) == 0
    run, = Store(tmp_path / "results").load_runs()
    source = run["weights_source"]
    assert source["name"] == "test_a0_k600" and "not verified against a published hash" in source["label"]
    assert source["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert run["videos_evaluated"] == tiny_kinetics.videos["val"] == 9 and run["row"] == 2
    assert 0 <= run["top1"] <= run["top5"] <= 100 and run["classes"] == 10
    assert run["input"]["frames"] == 8 and run["deviations"]["frames"] == {"spec": 50, "used": 8}
    # as a Kinetics-600 run at the row's own input, Table 1's footnote and `compare` name the weights
    kinetics = {**run, "dataset": "kinetics600", "deviations": {}}
    table = report.build_table(Store(tmp_path / "results"), measurements=[], runs=[kinetics]).set_index("row")
    assert "not verified against a published hash), evaluated here: test_a0_k600 (sha256 " + source["sha256"][:12] in \
        table.loc[2, "status"]
    result, _, _ = compare(table.reset_index(), [2], 5.0, 100.0, verdicts(Store(tmp_path / "results")))
    assert result.loc[0, "weights"] == "test_a0_k600 (unverified)"
    assert result.loc[0, "top-1 pub/K600"] == f"72.3/{run['top1']:.1f}"


def test_a_grw_snapshot_imports_with_its_head_and_ema(tmp_path, monkeypatch):
    from test_grw_authors import our_spec  # the fixture's reduced A0-S as a MovinetSpec

    manifest = json.loads((FIXTURES / "grw" / "manifest.json").read_text())
    tiny_registry(monkeypatch, "movinet_a0_stream", our_spec(manifest["backbone_config"]["movinet_pytorch_config"]),
                  stream=True)
    monkeypatch.setitem(CHECKPOINTS, "test_a0s_grw", entry("test_a0s_grw", "http://127.0.0.1:9/x", num_classes=5,
                                                           converter=GRW_AUTHORS_CONVERTER, grw_head=True))
    out = tmp_path / "a0s.pt"
    assert main(["weights", "import", "test_a0s_grw", "--file", str(FIXTURES / "grw" / "authors_a0s_tiny.pt"),
                 "--out", str(out)]) == 0
    outputs = torch.load(FIXTURES / "grw" / "authors_a0s_tiny_outputs.pt", weights_only=True)
    clip = outputs["clip"].transpose(1, 2)
    for variant in ("raw", "ema"):
        trained = load_trained(out, variant)
        assert trained.spec.row == 1 and trained.weights == variant
        with torch.no_grad():
            logits, _ = trained.model(clip)
        assert (logits - outputs[f"{variant}_logits"]).abs().max() <= 1e-4
    grw = trained.spec.grw
    params = manifest["transformer_params"]
    assert (grw.embed_dim, grw.depth, grw.num_heads, grw.mlp_dim, grw.window) == (
        params["embed_dim"], params["depth"], params["num_heads"], params["mlp_dim"], manifest["T"])
    provenance = trained.checkpoint["provenance"]
    assert (provenance["num_samples"], provenance["T"]) == (manifest["num_samples"], manifest["T"])
    assert provenance["transformer_params"] == params and trained.deviations == {}
    assert int(trained.checkpoint["ema"]["n_averaged"]) == provenance["ema_n_averaged"] > 0


def test_train_init_file_reports_what_it_initialised(base_weights, tmp_path, tiny_kinetics, capsys):
    fixture, file = base_weights
    imported = tmp_path / "a0.pt"
    assert main(["weights", "import", "test_a0_k600", "--file", str(file), "--out", str(imported)]) == 0
    out = tmp_path / "run"
    assert main(["train", "--row", "2", "--init", str(imported), "--data", str(tiny_kinetics.root), "--out", str(out),
                 "--frames", "8", "--res", "32", "--epochs", "1", "--batch-size", "6", "--no-val", "--num-workers",
                 "0", "--device", "cpu"]) == 0
    report_ = json.loads((out / "init.json").read_text())
    # 10 classes in the weights, 3 in the data: everything but the last classifier layer is loaded
    classifier = ["head.classifier.fc.weight", "head.classifier.fc.bias"]
    assert report_["not_initialised"] == classifier and report_["unused"] == []
    assert report_["shape_differs"] == ["head.classifier.fc.weight: (10, 64) -> (3, 64)",
                                        "head.classifier.fc.bias: (10,) -> (3,)"]
    assert len(report_["loaded"]) == len(fixture["state_dict"]) - 2
    assert f"{len(report_['loaded'])} tensors loaded" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["init"] == str(imported.resolve())
    assert config["config"]["init_sha256"] == hashlib.sha256(imported.read_bytes()).hexdigest()
    assert config["init_report"] == {"loaded": len(report_["loaded"]), "not_initialised": 2, "shape_differs": 2,
                                     "unused": 0}


def test_a_k600_backbone_under_a_grw_head_leaves_the_head_random_and_says_so(tmp_path, monkeypatch):
    fixture = torch.load(FIXTURES / "movinet_pytorch_stream.pt", weights_only=True)
    tiny_registry(monkeypatch, "movinet_a0_stream", MovinetSpec.from_dict(fixture["spec"]), stream=True)
    torch.save(fixture["state_dict"], tmp_path / "stream.pt")
    monkeypatch.setitem(CHECKPOINTS, "test_a0s_k600", entry("test_a0s_k600", "http://127.0.0.1:9/x"))
    weights.import_file("test_a0s_k600", tmp_path / "stream.pt", tmp_path / "cache")
    model = build_run_model(get_spec(1), 3, Recipe())
    state, path = weights.initial_state("test_a0s_k600", tmp_path / "cache")
    report_ = weights.load_initial(model, state, "test_a0s_k600", "0" * 64)
    head = [key for key in model.state_dict() if key.startswith("head.")]
    assert report_.not_initialised == head and len(head) > 10
    assert report_.unused == ["head.classifier.hidden.weight", "head.classifier.hidden.bias",
                              "head.classifier.fc.weight", "head.classifier.fc.bias"]
    assert len(report_.loaded) == len(state) - 4 and all(key.startswith("backbone.") for key in report_.loaded)


def test_a_file_brought_without_a_published_hash_is_recorded_as_unverified_everywhere(base_weights, tmp_path,
                                                                                       tiny_kinetics, capsys,
                                                                                       monkeypatch):
    fixture, file = base_weights  # test_a0_k600 publishes no hash
    junk = tmp_path / "junk.pt"
    tensor_file(junk)  # a state dict, but not MoViNet weights: refused now, not at import
    assert main(["weights", "download", "test_a0_k600", "--file", str(junk)]) == 2
    assert "refused" in capsys.readouterr().err
    assert weights.cached_record("test_a0_k600") is None

    assert main(["weights", "download", "test_a0_k600", "--file", str(file)]) == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    assert f"local file, sha256 {sha}, not verified against a published hash" in " ".join(out.split())
    record = weights.cached_record("test_a0_k600")
    assert record["verified"] is False and "not verified" in record["verification"]
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"UNVERIFIED {sha[:8]}" in listing and "test_a0_k600: local file" in listing

    monkeypatch.setattr(weights, "resolve_spec", lambda config: resolve_spec(dataclasses.replace(config, frames=8,
                                                                                                 res=32)))
    classes = [*tiny_kinetics.classes, *(f"other_{i}" for i in range(7))]
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    assert main(["eval", "--row", "2", "--weights", "test_a0_k600", "--data", str(tiny_kinetics.root),
                 "--num-workers", "0", "--device", "cpu", "--index-cache", str(tmp_path), "--results",
                 str(tmp_path / "results"), "--classes", str(tmp_path / "classes.txt")]) == 0
    run, = Store(tmp_path / "results").load_runs()
    assert run["weights_source"]["verified"] is False
    assert "not verified against a published hash" in run["weights_source"]["label"]
    kinetics = {**run, "dataset": "kinetics600", "deviations": {}}
    table = report.build_table(Store(tmp_path / "results"), measurements=[], runs=[kinetics]).set_index("row")
    assert "not verified against a published hash" in table.loc[2, "status"]
    result, _, _ = compare(table.reset_index(), [2], 5.0, 100.0, verdicts(Store(tmp_path / "results")))
    assert result.loc[0, "weights"] == "test_a0_k600 (unverified)"
