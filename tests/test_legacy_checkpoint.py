"""Checkpoints written before methods and schedules owned their options still load.

The fixture was written by ``tools/make_legacy_checkpoint.py`` at commit 463c7d5, whose ``RunConfig``
held every method's and schedule's options as its own fields.
"""

from pathlib import Path

import torch

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_multigrid_mobilenet_v3_s.pt"


def test_legacy_checkpoint_loads_with_its_weights_and_options():
    from benchmarks.core.checkpoint import load_checkpoint
    from benchmarks.engine.runs import load_trained

    state = load_checkpoint(FIXTURE)
    assert state["config"]["multigrid"] == "short"  # the old layout: the schedule's options at the top level
    trained = load_trained(FIXTURE)
    assert trained.classes == ("down", "left", "right") and trained.spec.row == 3
    assert trained.config.schedule == "multigrid"
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, state["model"][name].to(tensor.dtype)), name
    with torch.no_grad():
        logits = trained.model(torch.rand(2, 3, 4, 32, 32))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
