"""``python -m benchmarks.run weights``: download (a real HTTP server on 127.0.0.1), the cache's checks,
refusing pickles that would run code, importing into the suite's checkpoint format, evaluating and
training from public weights.

The catalogue entries here are test entries added to ``baselines.weights.CHECKPOINTS``; the weights
are the random-weight fixtures of ``tests/fixtures`` (reduced-width MoViNets), and the registry's
``movinet_a0_stream`` is replaced by the fixtures' reduced model so that row 1 builds in milliseconds.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest
import torch

from baselines.weights import CHECKPOINTS, GRW_AUTHORS_CONVERTER, Checkpoint
from benchmarks import weights
from benchmarks.run import main

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


def test_file_imports_a_copy_offline_with_the_same_checks(tmp_path, monkeypatch, capsys):
    content = tensor_file(tmp_path / "brought.pt")
    blob = hashlib.sha1(f"blob {len(content)}\0".encode() + content).hexdigest()
    monkeypatch.setitem(CHECKPOINTS, "test_k600", entry("test_k600", "http://127.0.0.1:9/unreachable",
                                                        git_blob_sha1=blob))
    cache = tmp_path / "cache"
    assert download(cache, "test_k600", extra=("--file", str(tmp_path / "brought.pt"))) == 0
    assert (cache / "test_k600").read_bytes() == content
    record = json.loads((cache / "test_k600.json").read_text())
    assert record["sha256"] == hashlib.sha256(content).hexdigest() and record["checked"] == ["git blob sha1"]
    assert record["origin"] == f"file {(tmp_path / 'brought.pt').resolve()}"
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
