"""The standard-vs-multigrid study (``python -m benchmarks.run multigrid``): training GFLOPs counted clip
by clip at each step's shape, its table from fixture runs (no training), and its run configs."""

import dataclasses

import pytest

from benchmarks.engine.schedules import ConstantSchedule, StepPolicy, StepShape
from benchmarks.methods.multigrid import study
from benchmarks.methods.multigrid.schedule import MultigridConfig, MultigridSchedule


def clip_cost(frames: int, side: int) -> float:
    """A stand-in for fvcore: proportional to frames x side^2 (what a 3D CNN costs)."""
    return frames * side * side / 1e6


def test_training_gflops_add_every_clip_at_its_shape():
    plain = ConstantSchedule(StepShape(2, 8, 32), steps_per_epoch=32, total_epochs=2)
    assert study.training_gflops(plain, 64, clip_cost) == pytest.approx(2 * 64 * clip_cost(8, 32))

    plan = MultigridSchedule(MultigridConfig(), StepPolicy.decaying((1,), 2), batch_size=2, frames=8, side=32,
                             videos_per_process=64)
    expected = 0.0
    for epoch in range(plan.total_epochs):
        for step in range(plan.steps_in_epoch(epoch)):
            shape = plan.shape(epoch, step)
            expected += shape.batch_size * shape.frames * shape.side**2 / 1e6
    assert study.training_gflops(plan, 64, clip_cost) == pytest.approx(expected)
    # Batch x frames x side^2 is (about) conserved per step, so multigrid's clips are cheaper: fewer GFLOPs
    # per epoch than the standard schedule's, though it trains 1.5x the epochs.
    per_epoch = study.training_gflops(plan, 64, clip_cost) / plan.total_epochs
    assert per_epoch < 64 * clip_cost(8, 32)


def test_both_schedules_share_the_recipe_data_and_seed():
    config = study.StudyConfig()
    standard, multigrid = (study.run_config(config, name, seed=1) for name in study.SCHEDULES)
    assert standard.recipe == multigrid.recipe and standard.recipe.seed == 1
    assert (standard.schedule, multigrid.schedule) == ("standard", "multigrid")
    assert standard.recipe.optimizer == "sgd" and standard.recipe.lr_policy == "steps"
    assert standard.recipe.lr_steps == (4, 5)  # 0.6 and 0.85 of 6 epochs
    assert dataclasses.replace(config, epochs=20).lr_steps == (12, 17)
    assert (standard.frames, standard.res) == (16, 64) and standard.out != multigrid.out


def run(schedule: str, seed: int, top1: float, time_s: float, gflops: float) -> dict:
    return {"schedule": schedule, "seed": seed, "top1": top1, "train_time_s": time_s, "training_gflops": gflops,
            "steps": 600 if schedule == "standard" else 200, "epochs": 6 if schedule == "standard" else 9,
            "gflops_per_clip": 0.3, "run": "5-x.json"}


SUMMARY = {
    "model": "X3D-XS", "config": dataclasses.asdict(study.StudyConfig()), "wall_time_s": 600.0,
    "command": "python -m benchmarks.run multigrid", "git_commit": "abc", "hardware": "test CPU",
    "date": "2026-01-01T00:00:00+00:00",
    "runs": [run("standard", 0, 60.0, 1000.0, 2000.0), run("standard", 1, 70.0, 1200.0, 2000.0),
             run("multigrid", 0, 50.0, 400.0, 800.0), run("multigrid", 1, 62.0, 400.0, 800.0)],
}


def test_table_gives_means_and_ratios_to_the_standard_schedule():
    table = study.study_table(SUMMARY).set_index("schedule")
    assert table.loc["standard", "top1"] == 65.0 and table.loc["multigrid", "top1"] == 56.0
    assert table.loc["multigrid", "speedup"] == pytest.approx(1100 / 400)
    assert table.loc["multigrid", "gflops_ratio"] == pytest.approx(2.5)
    assert table.loc["standard", "speedup"] == pytest.approx(1.0)
    markdown = study.render_markdown(SUMMARY)
    assert "NOT Kinetics" in markdown and "2.75x" in markdown and "2.50x" in markdown
    assert "Multigrid minus standard, paired by seed: -9.0" in markdown
