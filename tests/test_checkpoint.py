"""Checkpoint files: atomic writes, weights-only reads, refusal of pickled objects."""

import fractions

import pytest
import torch

from benchmarks.core import checkpoint as ckpt


def _state() -> dict:
    model = torch.nn.Linear(3, 2)
    ema = torch.optim.swa_utils.AveragedModel(model)
    return {"model": model.state_dict(), "ema": ema.state_dict(), "progress": {"epoch": 1, "step": 3},
            "classes": ["a", "b"], "complete": False}


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    state = _state()
    path = ckpt.save_checkpoint(tmp_path / "run" / "last.pt", state)
    loaded = ckpt.load_checkpoint(path)
    assert loaded["progress"] == {"epoch": 1, "step": 3} and loaded["classes"] == ["a", "b"]
    for name, tensor in state["model"].items():
        assert torch.equal(loaded["model"][name], tensor)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = ckpt.save_checkpoint(tmp_path / "last.pt", _state())
    with pytest.raises(TypeError):
        ckpt.save_checkpoint(path, {"model": (x for x in range(3))})  # generators cannot be pickled
    assert ckpt.load_checkpoint(path)["progress"]["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_pickled_object_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "evil.pt"
    # Any class that is not a tensor or plain data: unpickling it could run arbitrary code.
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": {}, "lr": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ckpt.CheckpointError, match="refused") as info:
        ckpt.load_checkpoint(path)
    assert str(path) in str(info.value) and "fractions.Fraction" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a torch file", None])
def test_unreadable_or_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": torch.ones(2)}, path)  # a valid torch file, but not our format
    else:
        path.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match="bad.pt"):
        ckpt.load_checkpoint(path)


def test_missing_file_and_latest(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    assert ckpt.latest_checkpoint(tmp_path) is None
    ckpt.save_checkpoint(tmp_path / ckpt.LAST, _state())
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / ckpt.LAST


def test_model_weights_picks_ema_by_default_and_strips_its_prefix():
    state = _state()
    weights, which = ckpt.model_weights(state)
    assert which == "ema" and set(weights) == set(state["model"])
    assert ckpt.model_weights(state, "raw") == (state["model"], "raw")
    state["ema"] = None
    assert ckpt.model_weights(state)[1] == "raw"
    with pytest.raises(ckpt.CheckpointError, match="no EMA"):
        ckpt.model_weights(state, "ema")


def test_sha256_of_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert ckpt.file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
