import errno
import json
import os
import subprocess

import pandas as pd
import pytest

from benchmarks.core import store
from benchmarks.core.paths import REPO_ROOT


def test_atomic_write_leaves_no_temporary_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    store.write_json(path, {"x": 1})
    store.write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    store.write_json(path, {"x": 1})
    with pytest.raises(TypeError):
        store.write_json(path, {"x": object.__new__(type("NoJson", (), {"__str__": None}))})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("content, message", [("{not json", "cannot read"), ("[1, 2]", "expected a JSON object"),
                                              ('{"row": 1}', "missing field")])
def test_malformed_files_raise_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(store.ResultFileError, match=message) as info:
        store.read_json(path, required=("row", "top1"))
    assert str(path) in str(info.value)


def test_malformed_run_is_never_skipped(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "1-broken.json").write_text("{")
    with pytest.raises(store.ResultFileError, match="1-broken.json"):
        store.Store(tmp_path).load_runs()


def test_default_store_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("GRW_BENCH_RESULTS", raising=False)
    assert store.Store.default().root == REPO_ROOT / "results"
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))
    assert store.Store.default().measurement_path(3, "cpu") == tmp_path / "measured" / "row03-cpu.json"


@pytest.mark.parametrize("writer, data, read", [
    (store.write_text, "hello\n", lambda p: p.read_text()),
    (store.write_bytes, b"\x00\x01", lambda p: p.read_bytes()),
    (store.write_csv, pd.DataFrame({"a": [1, 2]}), lambda p: pd.read_csv(p)["a"].tolist()),
])
def test_every_writer_is_atomic(tmp_path, writer, data, read):
    path = tmp_path / "out" / "file"
    writer(path, data)
    expected = data if not isinstance(data, pd.DataFrame) else [1, 2]
    assert read(path) == expected and [p.name for p in path.parent.iterdir()] == ["file"]


def test_an_interrupted_writer_leaves_the_old_file(tmp_path):
    path = tmp_path / "figure.png"
    store.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), store.atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_a_refused_write_names_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    with pytest.raises(OSError) as info, store.atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write to a full disk does: no file name
    assert info.value.filename == str(path) and list(tmp_path.iterdir()) == []


def test_remove_temporaries_removes_only_those_of_that_file(tmp_path):
    names = ["last.pt", ".last.ab_12cd3.tmp.pt", ".last.x.tmp.json", ".lastly.x.tmp.pt", ".best.y.tmp.pt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in store.remove_temporaries(tmp_path / "last.pt")] == [".last.ab_12cd3.tmp.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(names) - {".last.ab_12cd3.tmp.pt"})


def test_outputs_under_results_do_not_make_the_code_dirty(monkeypatch):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="", stderr="")

    monkeypatch.setattr(store.subprocess, "run", fake_run)
    assert store.modified_code() == []
    assert ":(exclude)results" in calls[0]


def test_provenance_names_commit_hardware_and_date():
    record = store.provenance("cpu")
    assert set(record) >= {"command", "git_commit", "hardware", "date", "torch"}
    assert len(record["git_commit"].split("-")[0]) in (40, len("unknown"))
    assert str(os.cpu_count()) in record["hardware"]


def test_provenance_names_gpu_driver_cuda_and_cudnn_for_cuda_only(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Test GPU")
    monkeypatch.setattr(store, "gpu_driver_version", lambda: "580.1")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)  # needs a GPU to load cuDNN
    cuda_fields = {"gpu", "gpu_driver", "cuda", "cudnn"}

    record = store.provenance("cuda")
    assert {name: record[name] for name in ("gpu", "gpu_driver", "hardware")} == {
        "gpu": "NVIDIA Test GPU", "gpu_driver": "580.1", "hardware": "NVIDIA Test GPU"}
    assert record["cuda"] == torch.version.cuda and record["cudnn"] == 91000
    assert cuda_fields <= set(store.provenance("cuda:0"))
    assert not cuda_fields & set(store.provenance("cpu"))


def test_no_driver_version_without_nvidia_smi(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(store.subprocess, "run", missing)
    assert store.gpu_driver_version() is None


def test_a_copy_without_git_takes_its_commit_from_the_environment(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(store.subprocess, "run", no_git)
    monkeypatch.delenv(store.COMMIT_ENV, raising=False)
    assert store.git_commit() == "unknown"
    monkeypatch.setenv(store.COMMIT_ENV, "0123abc")
    assert store.git_commit() == "0123abc"


def test_written_files_honour_the_umask_and_keep_an_existing_mode(tmp_path):
    import os
    import stat

    from benchmarks.core.store import write_json, write_text

    previous = os.umask(0o022)
    try:
        fresh = write_json(tmp_path / "run.json", {"a": 1})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_text(tmp_path / "private.md", "x").stat().st_mode) == 0o600
        tracked = tmp_path / "tracked.md"
        tracked.write_text("old")
        tracked.chmod(0o664)
        write_text(tracked, "new")  # rewritten under umask 077: keeps its 0664
        assert stat.S_IMODE(tracked.stat().st_mode) == 0o664 and tracked.read_text() == "new"
    finally:
        os.umask(previous)
