import json
import os

import pytest

from benchmarks import store


def test_atomic_write_leaves_no_temporary_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    store.write_json_atomic(path, {"x": 1})
    store.write_json_atomic(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    store.write_json_atomic(path, {"x": 1})
    with pytest.raises(TypeError):
        store.write_json_atomic(path, {"x": object.__new__(type("NoJson", (), {"__str__": None}))})
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


def test_malformed_run_is_never_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "1-broken.json").write_text("{")
    with pytest.raises(store.ResultFileError, match="1-broken.json"):
        store.load_runs()


def test_provenance_names_commit_hardware_and_date():
    record = store.provenance("cpu")
    assert set(record) >= {"command", "git_commit", "hardware", "date", "torch"}
    assert len(record["git_commit"].split("-")[0]) in (40, len("unknown"))
    assert str(os.cpu_count()) in record["hardware"]
