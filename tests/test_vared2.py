"""VA-RED2 (seed 004) dynamic convolutions: the full option is the original layer, the temporal option
is a strided convolution, training sums the options as the gates weigh them, inference really runs the
reduced convolution (fvcore agrees with the analytic count), and the efficiency loss."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import baselines
from baselines.vared2 import DynamicConv3d, conv_macs, convert, efficiency_loss, spent_gflops
from benchmarks.core.counting import count_gflops

pytestmark = pytest.mark.usefixtures("one_thread")


def layer(stride: int = 1, kernel: tuple[int, int, int] = (3, 3, 3)) -> tuple[nn.Conv3d, DynamicConv3d]:
    torch.manual_seed(0)
    conv = nn.Conv3d(6, 8, kernel, stride=(stride, 1, 1), padding=tuple(k // 2 for k in kernel))
    dynamic = DynamicConv3d(conv, frames=8, temporal=(1, 2), channel=(1.0, 0.5))
    with torch.no_grad():  # cheap operations away from identity, so that options differ
        for p in (dynamic.temporal_scale, dynamic.temporal_bias, dynamic.channel_scale, dynamic.channel_bias):
            p.add_(torch.randn_like(p) * 0.3)
    return conv, dynamic


def force(dynamic: DynamicConv3d, temporal: list[float], channel: list[float]) -> None:
    dynamic.forced = (torch.tensor([temporal]), torch.tensor([channel]))


@pytest.mark.parametrize("training", [True, False])
def test_full_option_is_the_original_layer(training):
    conv, dynamic = layer()
    force(dynamic, [1.0, 0.0], [1.0, 0.0])
    x = torch.randn(2, 6, 8, 10, 10)
    dynamic.train(training)
    assert torch.equal(dynamic(x), conv(x))
    if not training:
        assert dynamic.spent.tolist() == [1.0, 1.0]


def test_temporal_option_computes_the_frames_of_a_strided_convolution():
    conv, dynamic = layer()
    x = torch.randn(2, 6, 8, 10, 10)
    strided = nn.functional.conv3d(x, conv.weight, conv.bias, stride=(2, 1, 1), padding=conv.padding)
    option = dynamic.option(x, t=1, c=0)
    assert option.shape == conv(x).shape
    assert torch.allclose(option[:, :, ::2], strided, atol=1e-6)
    assert torch.allclose(option[:, :, ::2], conv(x)[:, :, ::2], atol=1e-6)
    # the skipped frames are the cheap map of the frame before them, not the convolution's
    rebuilt = strided * dynamic.temporal_scale[0].view(1, -1, 1, 1, 1) + dynamic.temporal_bias[0].view(1, -1, 1, 1, 1)
    assert torch.allclose(option[:, :, 1::2], rebuilt, atol=1e-6)


def test_training_output_is_the_gate_weighted_sum_of_the_options():
    _, dynamic = layer()
    x = torch.randn(3, 6, 8, 10, 10)
    dynamic.train()
    out = dynamic(x)
    vt, vc = dynamic.last_weights
    assert vt.shape == (3, 2) and vc.shape == (3, 2) and (vt >= 0).all() and (vt < 1).all()
    expected = sum((vt[:, t] * vc[:, c]).view(-1, 1, 1, 1, 1) * dynamic.option(x, t, c)
                   for t in range(2) for c in range(2))
    assert torch.allclose(out, expected, atol=1e-5)


def test_inference_at_half_channels_runs_half_the_filters():
    conv, dynamic = layer()
    dynamic.eval()
    x = torch.zeros(1, 6, 8, 10, 10)
    full = count_gflops(conv, x.shape)
    force(dynamic, [1.0, 0.0], [0.0, 1.0])  # only r = 1/2
    half = count_gflops(dynamic, x.shape)
    assert half == pytest.approx(0.5 * full, rel=0.01)
    assert half * 1e9 == pytest.approx(0.5 * conv_macs(conv, conv(x).shape), rel=0.01)
    force(dynamic, [0.0, 1.0], [0.0, 1.0])  # R = 2 and r = 1/2
    assert count_gflops(dynamic, x.shape) == pytest.approx(0.25 * full, rel=0.01)
    force(dynamic, [0.0, 0.0], [0.0, 1.0])  # no temporal option on: nothing computed
    assert count_gflops(dynamic, x.shape) == 0 and dynamic.spent.tolist() == [0.0]


def test_each_video_spends_what_its_gates_choose_in_a_converted_x3d():
    model = baselines.build("x3d_xs", num_classes=3).eval()
    plain_gflops = count_gflops(model, (1, 3, 8, 32, 32))
    layers = ["res4.0.conv_a.0", "res4.0.conv_c.0", "res5.0.conv_a.0"]
    macs = convert(model, layers, (1, 3, 8, 32, 32))
    dynamic = [dict(model.named_modules())[name] for name in layers]
    for module in dynamic:  # video 0: everything; video 1: half the channels at half the frames
        module.forced = (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    model(torch.randn(2, 3, 8, 32, 32))
    static = plain_gflops - sum(macs.values()) / 1e9
    spent = spent_gflops(model, macs, static)
    assert spent[0] == pytest.approx(plain_gflops, rel=1e-6)
    assert spent[1] == pytest.approx(static + 0.25 * sum(macs.values()) / 1e9, rel=1e-6)
    for module in dynamic:  # fvcore on the executed graph of video 1 alone
        module.forced = (torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]]))
    assert count_gflops(model, (1, 3, 8, 32, 32)) == pytest.approx(float(spent[1]), rel=0.01)


def test_efficiency_loss_counts_only_correct_videos_and_reaches_the_gates():
    model = baselines.build("x3d_xs", num_classes=3)
    layers = ["res4.0.conv_a.0", "res5.0.conv_a.0"]
    macs = convert(model, layers, (1, 3, 8, 32, 32))
    model.train()
    model(torch.randn(4, 3, 8, 32, 32))
    wrong = efficiency_loss(model, macs, torch.zeros(4, dtype=torch.bool))
    assert wrong.item() == 0
    loss = efficiency_loss(model, macs, torch.tensor([True, False, True, False]))
    assert 0 < loss.item() <= 1
    loss.backward()
    gates = [dict(model.named_modules())[name].gate for name in layers]
    assert all(gate.fc2.weight.grad.abs().sum() > 0 for gate in gates)
    with pytest.raises(ValueError, match="not 3D convolutions"):
        convert(model, ["res4.0.conv_a"], (1, 3, 8, 32, 32))


def test_train_joint_then_finetune_then_evaluate_per_video_gflops(planes, tmp_path):
    from benchmarks.core.checkpoint import LAST
    from benchmarks.core.store import Store
    from benchmarks.engine.config import RunConfig
    from benchmarks.engine.evaluate import EvalConfig, evaluate
    from benchmarks.engine.recipe import Recipe
    from benchmarks.engine.train import train

    def config(out, **changes) -> RunConfig:
        return RunConfig(**{**dict(row=5, data=str(planes), out=str(tmp_path / out), method="vared2", frames=8,
                                    res=32, fps=8, recipe=Recipe(epochs=1, batch_size=4, lr=1e-3, ema_decay=0.0),
                                    validate=False, num_workers=0, log_every=1000), **changes})

    joint = train(config("joint"))
    assert joint["status"] == "completed" and "train_efficiency" in joint["history"][0]
    tuned = train(config("finetune", method_options={"stage": "finetune"}, init=str(tmp_path / "joint" / LAST)))
    assert tuned["history"][0]["train_loss"] > tuned["history"][0]["train_ce"]  # the efficiency term is on
    with pytest.raises(ValueError, match="X3D row"):
        train(config("mobilenet", row=3))

    record = evaluate(EvalConfig(checkpoint=str(tmp_path / "finetune" / LAST), data=str(planes), split="test",
                                 weights_variant="raw", num_workers=0, device="cpu"), Store(tmp_path / "results"))
    per_video = pd.read_csv(record["per_video_csv"])
    assert len(per_video) == record["videos_evaluated"] == 6
    summary = record["gflops_per_video"]
    full = count_gflops(baselines.build("x3d_xs", num_classes=3), (1, 3, 8, 32, 32))  # every option computed
    assert summary["min"] <= summary["mean"] <= summary["max"] <= full * 1.0001
    assert summary["mean"] == pytest.approx(per_video["gflops"].mean()) == record["gflops"]
    assert Path(record["gflops_histogram"]).stat().st_size > 5_000
    assert (per_video["predicted"] == per_video["class"]).mean() * 100 == pytest.approx(record["top1"])
    assert per_video["correct"].mean() * 100 == pytest.approx(record["top1"])
    assert all(Path(video).is_file() for video in per_video["video"])  # each row names its video file
    # each video's options, per dynamic layer, account for its GFLOPs
    plain = baselines.build("x3d_xs", num_classes=3)
    layers = [name for name, m in plain.named_modules() if name.endswith(("conv_a.0", "conv_c.0"))]
    macs = convert(plain, layers, (1, 3, 8, 32, 32))
    assert set(per_video.columns) == {"video", "class", "predicted", "correct", "gflops",
                                      *(f"{n} {o}" for n in layers for o in "Rr")}
    assert set(per_video["class"]) <= set(pd.read_csv(record["per_class_csv"])["class"])  # class names, not indices
    fraction = sum(macs[n] * (per_video[f"{n} r"] / per_video[f"{n} R"]).fillna(0) for n in layers) / 1e9
    assert set(per_video[[f"{n} R" for n in layers]].stack()) <= {0.0, 1.0, 2.0}
    assert per_video["gflops"].to_numpy() == pytest.approx((full - sum(macs.values()) / 1e9 + fraction).to_numpy())


def test_study_table_summarises_each_model_and_split(tmp_path):
    from benchmarks.methods.vared2 import report as vared2_report
    from benchmarks.methods.vared2 import study as vared2_study

    def row(model, seed, split, top1, mean):
        return {"model": model, "seed": seed, "split": split, "top1": top1, "gflops_mean": mean,
                "gflops_min": mean * 0.8, "gflops_max": mean * 1.1, "train_time_s": 1.0,
                "run": f"5-{model}-{seed}-{split}.json"}

    shares = {"share_R2": 0.5, "share_r_half": 0.25, "share_skipped": 0.0}
    summary = {"runs": [row("vared2", 0, "test_static", 60, 0.02) | shares,
                        row("vared2", 1, "test_static", 70, 0.03) | shares | {"share_R2": 0.7},
                        row("vared2", 0, "test_fast", 50, 0.04), row("x3d", 0, "test_fast", 55, 0.05),
                        row("vared2-joint", 0, "test_static", 58, 0.03) | shares],  # no per-video CSV: not drawn
               "command": "python -m benchmarks.run vared2-study", "git_commit": "abc", "hardware": "cpu",
               "date": "2026-01-01", "wall_time_s": 60.0}
    table = vared2_report.study_table(summary).set_index(["model", "split"])
    static = table.loc[("vared2", "test_static")]
    assert (static["top1"], static["seeds"]) == (65.0, 2)
    assert static["gflops_mean"] == pytest.approx(0.025) and static["gflops_min"] == pytest.approx(0.016)
    markdown = vared2_report.render_markdown(summary)
    assert "NOT Kinetics" in markdown and "65.0 ± 7.1" in markdown
    assert static["share_R2"] == pytest.approx(0.6) and "| 0.600 " in markdown
    assert pd.isna(table.loc[("x3d", "test_fast"), "share_R2"])  # a plain model has no options
    assert table.loc[("vared2-joint", "test_static"), "top1"] == 58 and "vared2-joint" in markdown
    per_video = pd.DataFrame({"label": [0, 1], "gflops": [1.0, 2.0], "a R": [2.0, 1.0], "a r": [1.0, 0.5],
                              "b R": [0.0, 2.0], "b r": [0.0, 0.5]})
    assert vared2_study.option_shares(per_video) == {"share_R2": 0.5, "share_r_half": 0.5, "share_skipped": 0.25}
    skipped = vared2_report.skipped_layers(per_video)
    assert skipped.to_dict() == {"b": 0.5, "a": 0.0}
    assert "| b       |      0.50 |" in vared2_report.render_markdown(summary, skipped)
    runs = tmp_path / "runs"
    runs.mkdir()
    for run in summary["runs"]:
        if run["model"] == "vared2":
            low = run["gflops_mean"] * (0.5 if run["split"] == "test_static" else 0.9)
            pd.DataFrame({"gflops": [low, run["gflops_mean"]]}).to_csv(
                runs / run["run"].replace(".json", ".per_video.csv"), index=False)
    spending = vared2_report.per_video(summary, runs)
    assert len(spending) == 6 and spending.groupby("split")["gflops"].min()["test_static"] == pytest.approx(0.01)
    written = vared2_report.write_outputs(summary, tmp_path)
    assert [p.name for p in written] == ["vared2_airplanes.md", "vared2_airplanes.png"]
    assert written[1].stat().st_size > 10_000
    # the proxy's figure draws the newest VA-RED2 study of its store
    from benchmarks.core.store import write_json
    from benchmarks.studies import proxy
    from tests.test_proxy import FIXTURE

    (before,) = proxy.plot_proxy(proxy.proxy_table(FIXTURE), tmp_path / "before.png")
    summary["runs"] += [row("vared2", 0, "test", 60, 0.02), row("vared2", 1, "test", 64, 0.022)]
    write_json(tmp_path / "runs" / "vared2" / "vared2-study-20260101T000000000000Z.json", summary)
    after = [p for p in proxy.write_outputs(FIXTURE, tmp_path) if p.suffix == ".png"][0]
    assert after.read_bytes() != before.read_bytes()
    assert vared2_study.SPLITS == ("test", "test_static", "test_slow", "test_fast")


def test_option_costs_count_each_layers_reduced_convolution(tmp_path):
    import dataclasses

    from benchmarks.methods.vared2.cost import largest_deviation, option_costs
    from benchmarks.run import main as run_main
    from benchmarks.table1.specs import get_spec

    spec = dataclasses.replace(get_spec(5), frames=4, res=32)
    layers, totals = option_costs(spec)
    assert len(layers) == 2 * (3 + 5 + 11 + 7)  # conv_a and conv_c of every X3D block
    assert largest_deviation(layers) < 0.01
    assert (layers["R2 r0.5"] / layers["full_gflops"]).sub(0.25).abs().max() < 0.01
    assert (layers["gate_mflops"] > 0).all()
    network = totals.set_index("option")["network_gflops"]
    gates = layers["gate_mflops"].sum() / 1e3
    assert network["R1 r1"] == pytest.approx(network["plain X3D"] + gates, rel=1e-6)
    saved = (layers["full_gflops"] - layers["R2 r0.5"]).sum()
    assert network["R2 r0.5"] == pytest.approx(network["R1 r1"] - saved, rel=1e-3)
    assert run_main(["vared2-cost", "--rows", "1", "--results", str(tmp_path)]) == 2  # a MoViNet row
