"""ONNX export (``benchmarks.table1.export``, ``python -m benchmarks.run export``) at small inputs: one row
per family, each verified in onnxruntime against PyTorch eager (stream rows frame by frame), the command
end to end, and the refusal of a graph whose outputs differ."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.run import main
from benchmarks.table1 import export
from benchmarks.table1.export import ExportError, OnnxRunner, eager_stream, export_onnx, with_input
from benchmarks.table1.specs import build_model, get_spec

pytest.importorskip("onnxruntime")


def small(row: int, frames: int = 4, res: int = 32, **changes):
    import dataclasses

    return dataclasses.replace(with_input(get_spec(row), frames, res), **changes)


def exported(spec, tmp_path):
    torch.manual_seed(0)
    model = build_model(spec).eval()
    path = tmp_path / f"row{spec.row}.onnx"
    return model, path, export_onnx(model, spec, path)


@pytest.mark.parametrize("row", [15, 4, 5], ids=["movinet-a3-grw-base", "mobilenet-v3-tsm", "x3d-xs"])
def test_base_rows_match_eager_on_the_whole_clip(row, tmp_path, one_thread):
    spec = small(row)
    model, path, record = exported(spec, tmp_path)
    assert record["verification"]["max_abs_difference"] <= 1e-4
    assert record["verification"]["mode"] == "whole clip" and record["input_shape"] == [1, 3, 4, 32, 32]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert {"torch", "onnx", "onnxruntime", "opset", "row"} <= set(sidecar) and sidecar["row"] == row
    clip = torch.rand(spec.clip_shape)
    with torch.no_grad():
        expected = export.LogitsOnly(model)(clip).numpy()
    assert np.abs(OnnxRunner(path).run(clip) - expected).max() <= 1e-4
    if spec.grw is not None:  # the GRW head is in the graph
        import onnx

        weights = {init.name for init in onnx.load(str(path)).graph.initializer}
        assert any("head.blocks.0.attn.qkv" in name for name in weights)


def test_grw_stream_row_runs_frame_by_frame_with_a_growing_state(tmp_path, one_thread):
    spec = small(1, frames=5)
    model, path, record = exported(spec, tmp_path)
    assert record["verification"]["mode"] == "frame by frame" and record["verification"]["steps_compared"] == 5
    assert record["input_shape"] == [1, 3, 1, 32, 32]
    assert record["verification"]["last_step_vs_eager_whole_clip"] <= 1e-4
    growing = [entry for entry in record["state"] if entry["growing_axis"] is not None]
    assert [entry["name"] for entry in growing] == ["embeddings"] and growing[0]["shape"][1] == 0
    assert any(entry["name"].endswith("cgap.count") and entry["dtype"] == "int64" for entry in record["state"])

    runner = OnnxRunner(path)
    clip = torch.rand(1, 3, 7, 32, 32)  # longer than the clip it was verified on
    ours = runner.run_stream(clip[:, :, t:t + 1] for t in range(7))
    expected = eager_stream(model, clip)
    assert len(ours) == 7 and max(np.abs(a - b.numpy()).max() for a, b in zip(ours, expected)) <= 1e-4
    assert np.array_equal(runner.run(clip), ours[-1])


def test_plain_stream_model_has_a_fixed_size_state(tmp_path, one_thread):
    spec = small(1, grw=None)
    _, path, record = exported(spec, tmp_path)
    assert all(entry["growing_axis"] is None for entry in record["state"])
    assert record["verification"]["max_abs_difference"] <= 1e-4
    runner = OnnxRunner(path)
    assert runner.streaming and len(runner.initial_state()) == len(record["state"])


def test_command_exports_and_writes_the_sidecar(tmp_path, capsys, one_thread):
    out = tmp_path / "mnv3.onnx"
    assert main(["export", "--row", "3", "--frames", "2", "--res", "32", "--out", str(out),
                 "--results", str(tmp_path)]) == 0
    assert out.exists() and "max abs difference" in capsys.readouterr().out
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["row"] == 3 and sidecar["weights"].startswith("random") and sidecar["opset"] == 17
    assert {"git_commit", "command", "date"} <= set(sidecar)
    row = get_spec(3)
    assert sidecar["input_differs_from_row"] == {"row_frames": row.frames, "row_res": row.res}


@pytest.mark.parametrize("offset", [1e-3, 1e-6], ids=["above-1e-4", "large-for-tiny-logits"])
def test_a_graph_that_differs_from_eager_is_refused(offset, tmp_path, capsys, monkeypatch, one_thread):
    real_run = OnnxRunner.run
    monkeypatch.setattr(OnnxRunner, "run", lambda self, clip: real_run(self, clip) + offset)
    out = tmp_path / "refused.onnx"
    # MobileNetV3's random-weight logits are ~1e-9: an offset of 1e-6 is far above 1e-3 of them
    assert main(["export", "--row", "3", "--frames", "2", "--res", "32", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "row 3" in error and f"differs from PyTorch by {offset:.3g}" in error
    assert not out.exists() and not out.with_suffix(".json").exists() and not list(tmp_path.iterdir())
    assert issubclass(ExportError, ValueError)


def test_unimplemented_row_is_a_usage_error(capsys):
    assert main(["export", "--row", "20"]) == 2
    assert "not implemented" in capsys.readouterr().err


def test_command_exports_a_trained_checkpoint(tmp_path, capsys, one_thread):
    import dataclasses

    from benchmarks.core.checkpoint import file_sha256, save_checkpoint
    from benchmarks.engine.config import RunConfig
    from benchmarks.engine.runs import build_run_model, resolve_spec, run_record
    from benchmarks.engine.train import Progress

    config = RunConfig(row=3, data="d", out="o", res=32, frames=2)
    spec, deviations = resolve_spec(config)
    classes = ("a", "b", "c")
    torch.manual_seed(1)
    model = build_run_model(spec, len(classes), config.recipe)
    checkpoint = tmp_path / "last.pt"
    save_checkpoint(checkpoint, {"model": model.state_dict(), "ema": None, "progress": dataclasses.asdict(Progress()),
                                 **run_record(config, spec, deviations, classes), "complete": False})
    out = tmp_path / "trained.onnx"
    assert main(["export", "--row", "3", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["checkpoint_sha256"] == file_sha256(checkpoint) and sidecar["input_shape"] == [1, 3, 2, 32, 32]
    assert OnnxRunner(out).run(torch.rand(1, 3, 2, 32, 32)).shape == (1, 3)
    assert main(["export", "--row", "4", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "is of row 3" in capsys.readouterr().err
