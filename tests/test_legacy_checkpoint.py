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
    # the schedule's options now belong to the schedule; the other methods' unused fields are gone
    assert trained.config.schedule_options == {"cycles": "short", "epoch_factor": 1.0}
    assert trained.config.method == "standard" and trained.config.method_options == {}
    assert not {"multigrid", "a3d_range", "vared2_stage"} & set(trained.config.to_dict())
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor, state["model"][name].to(tensor.dtype)), name
    with torch.no_grad():
        logits = trained.model(torch.rand(2, 3, 4, 32, 32))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_legacy_method_fields_become_the_chosen_methods_options():
    from benchmarks.core.checkpoint import load_checkpoint
    from benchmarks.engine.config import RunConfig

    legacy = load_checkpoint(FIXTURE)["config"]
    vared2 = RunConfig.from_dict({**legacy, "row": 5, "schedule": "standard", "method": "vared2",
                                  "vared2_stage": "finetune", "vared2_weight": 0.5})
    assert vared2.method_options == {"stage": "finetune", "weight": 0.5} and vared2.schedule_options == {}
    a3d = RunConfig.from_dict({**legacy, "row": 5, "schedule": "standard", "method": "a3d", "a3d_range": "[0.06,1]"})
    assert a3d.method_options == {"range": "[0.06,1]"}
    assert a3d.training_method().range.name == "[0.06,1]"
