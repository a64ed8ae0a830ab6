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
