"""The CPU proxy of Table 1: its table and figure from fixture results (no training), the table1
options that start it, and that its runs never pass for the Kinetics-600 rows."""

import contextlib
import json

import pytest
import torch

from benchmarks.core import store
from benchmarks.run import main as run_main
from benchmarks.studies import harness, proxy
from benchmarks.table1 import report


def proxy_run(variant: str, row: int, grw: bool, top1: float, seed: int = 0) -> dict:
    return {"variant": variant, "row": row, "table1_model": f"model of row {row}", "grw": grw, "seed": seed,
            "lr": 1e-3, "epochs": 2, "grw_weight": 0.1 if grw else None, "top1": top1,
            "gflops_per_clip": 0.0155 if row == 1 else 0.013, "params_m": 2.0,
            "train_time_s": 100.0, "run": f"{row}-x.json"}


def proxy_summary(runs: list[dict]) -> dict:
    return {
        "experiment": "table1-proxy", "runs": runs,
        "config": {"epochs": 4, "train_videos": 1000, "test_videos": 100, "size": 32, "frames": 6},
        "grw": {"weight": 0.1, "window": 6, "alpha": 0.5}, "wall_time_s": 1500.0,
        "command": "python -m benchmarks.run proxy", "git_commit": "abc",
        "hardware": "test CPU", "date": "2026-01-01T00:00:00+00:00",
    }


FIXTURE = proxy_summary([
    proxy_run("MoViNet-A0-S + GRW head", 1, True, 50.0, seed=0),
    proxy_run("MoViNet-A0-S + GRW head", 1, True, 60.0, seed=1),
    proxy_run("MoViNet-A0-S head without GRW", 1, False, 40.0),
    proxy_run("MobileNetV3-S", 3, False, 33.0),
    proxy_run("MobileNetV3-S + GRW taps", 3, True, 33.0),
])


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))
    return tmp_path


def test_table_summarises_seeds_per_variant_in_run_order():
    table = proxy.proxy_table(FIXTURE).set_index("variant")
    assert list(table.index) == ["MoViNet-A0-S + GRW head", "MoViNet-A0-S head without GRW", "MobileNetV3-S",
                                 "MobileNetV3-S + GRW taps"]
    grw = table.loc["MoViNet-A0-S + GRW head"]
    assert (grw["top1"], grw["seeds"], grw["top1_text"]) == (55.0, 2, "55.0 ± 7.1")
    assert table.loc["MobileNetV3-S", "top1_text"] == "33.0" and table.loc["MobileNetV3-S", "seeds"] == 1


def test_markdown_and_figure_are_labelled_as_a_proxy(results):
    written = proxy.write_outputs(FIXTURE, results)
    assert [path.name for path in written] == ["proxy_table1.md", "proxy_flops.png"]
    assert (results / "proxy_flops.png").stat().st_size > 10_000
    md = (results / "proxy_table1.md").read_text()
    assert md.startswith("# CPU proxy of Table 1 on synthetic data (warm-up airplanes): NOT Kinetics-600")
    assert "(2 seeds; epochs and learning rate per model" in md and "32 x 32 px, 6-frame clips" in md
    assert "window 6, alpha 0.5, weight per model" in md and "| 0.1          | 2        | 0.001 |" in md
    assert "| MoViNet-A0-S + GRW head " in md and "| 55.0 ± 7.1 " in md and "| 33.0 " in md and "0.0155" in md
    assert "1,000 synthetic training videos" in md
    assert "python -m benchmarks.run proxy" in md and "25 min" in md


def test_points_close_together_share_one_label():
    table = proxy.proxy_table(FIXTURE)  # 1: 55.0 and 2: 40.0 at 0.0155 GFLOPs, 3 and 4: 33.0 at 0.013
    assert list(proxy.point_labels(table)) == ["1", "2", "3,4", ""]
    table.loc[3, "top1"] = 34.5  # within 2 points of 33.0: still one label
    assert list(proxy.point_labels(table)) == ["1", "2", "3,4", ""]
    table.loc[3, "top1"] = 40.0  # the same top-1 as variant 2, but not the same GFLOPs
    assert list(proxy.point_labels(table)) == ["1", "2", "3", "4"]


def test_rows_select_variants():
    assert [v.name for v in proxy.select_variants("5")] == ["X3D-XS", "X3D-XS + GRW taps"]
    assert {v.row for v in proxy.select_variants("1,4")} == {1, 4}
    assert proxy.select_variants(None) == proxy.VARIANTS
    with pytest.raises(ValueError, match="no proxy model for row"):
        proxy.select_variants("6")


@pytest.mark.parametrize("argv, message", [
    (["proxy", "--rows", "6"], "no proxy model for row"),
    (["proxy", "--launch", "local"], "unrecognized arguments"),
    (["proxy", "--seeds", "0"], "at least 1"),
    (["proxy", "--processes", "0"], "at least 1"),
])
def test_proxy_options_fail_before_training(argv, message, results, monkeypatch, capsys):
    monkeypatch.setattr(proxy, "run_proxy", lambda *args: pytest.fail("must not train"))
    with pytest.raises(SystemExit) if "unrecognized" in message else contextlib.nullcontext():
        assert run_main(argv) == 2
    assert message in capsys.readouterr().err


def test_proxy_command_writes_its_own_outputs(results, monkeypatch):
    def fake_run_proxy(store, config, variants):
        assert config == proxy.ProxyConfig(epochs=2, seeds=4) and [v.row for v in variants] == [1, 1]
        assert store.root == results
        return {**FIXTURE, "path": "proxy.json", "outputs": [str(p) for p in proxy.write_outputs(FIXTURE, results)]}

    monkeypatch.setattr(proxy, "run_proxy", fake_run_proxy)
    assert run_main(["proxy", "--rows", "1", "--epochs", "2", "--seeds", "4"]) == 0
    assert (results / "proxy_table1.md").is_file() and not (results / "table1.md").exists()


def test_each_variant_trains_with_its_own_epochs_lr_and_grw_weight_unless_overridden():
    config = proxy.ProxyConfig(seeds=1)
    by_name = {variant.name: variant for variant in proxy.VARIANTS}
    tsm_grw = proxy.train_config(config, by_name["MobileNetV3-S + TSM + GRW taps"], seed=2)
    assert (tsm_grw.row, tsm_grw.grw, tsm_grw.grw_weight) == (4, True, 0.005)
    assert (tsm_grw.recipe.epochs, tsm_grw.recipe.lr, tsm_grw.recipe.seed) == (6, 1e-3, 2)
    movinet = proxy.train_config(config, by_name["MoViNet-A0-S + GRW head"], seed=0)
    assert (movinet.grw_weight, movinet.recipe.epochs, movinet.recipe.lr) == (0.1, 2, config.lr)
    no_grw = proxy.train_config(config, by_name["MoViNet-A0-S head without GRW"], seed=0)
    assert (no_grw.grw, no_grw.grw_weight) == (False, None)
    overridden = proxy.train_config(proxy.ProxyConfig(epochs=9), by_name["MobileNetV3-S + TSM"], seed=0)
    assert overridden.recipe.epochs == 9  # --epochs applies to every variant
    assert tsm_grw.out != proxy.train_config(config, by_name["MobileNetV3-S + TSM"], seed=2).out


def test_longest_runs_start_first_and_the_summary_keeps_the_variants_order(results, monkeypatch):
    started = []

    def fake_map(fn, jobs, processes, desc):
        assert fn is proxy.run_variant and processes == 2
        started.extend((variant.name, seed) for _, variant, seed, _ in jobs)
        return [proxy_run(variant.name, variant.row, variant.grw, 50.0, seed) for _, variant, seed, _ in jobs]

    monkeypatch.setattr(harness, "map_in_processes", fake_map)
    monkeypatch.setattr(proxy, "prepare_data", lambda config: None)
    summary = proxy.run_proxy(store.Store(results), proxy.ProxyConfig(seeds=2), proxy.VARIANTS)
    assert started[:2] == [("X3D-XS + GRW taps", 0), ("X3D-XS + GRW taps", 1)]
    assert [(run["variant"], run["seed"]) for run in summary["runs"]] == [
        (variant.name, seed) for variant in proxy.VARIANTS for seed in range(2)]
    assert (results / "proxy_table1.md").is_file() and (results / "proxy_flops.png").is_file()


def test_proxy_runs_never_stand_for_kinetics_rows(results):
    def stored(name, row, grw, top1, date):
        record = {"row": row, "grw": grw, "top1": top1, "top5": 100.0, "dataset": "warmup-airplanes",
                  "split": "test", "videos_evaluated": 100, "videos_skipped": {}, "checkpoint_sha256": "0" * 64,
                  "git_commit": "abc", "hardware": "test", "date": date, "command": "fixture"}
        store.write_json(store.Store.default().runs / f"{name}.json", record)

    stored("1-grw", 1, True, 55.0, "2026-01-01")
    stored("1-ablation", 1, False, 40.0, "2026-01-02")  # newer, but the GRW row without GRW is not the row
    stored("3-taps", 3, True, 33.0, "2026-01-03")  # MobileNetV3-S with GRW taps is not row 3 either
    (results / "runs" / "proxy").mkdir()
    (results / "runs" / "proxy" / "proxy-x.json").write_text(json.dumps(FIXTURE))  # not read as a run

    table = report.build_table().set_index("row")
    assert table[["reproduced_top1"]].isna().all().all()  # runs on the airplanes are not in Table 1
    points = report.plot_points(report.build_table()).set_index("row")
    assert points.loc[1, "top1_source"] == "published"
    assert "warmup-airplanes" not in report.render_markdown(report.build_table())


def test_precise_batchnorm_recomputes_the_statistics_on_the_training_clips(tmp_path):
    """Train row 3 (MobileNetV3-S, BatchNorm momentum 0.01) briefly; afterwards its first BatchNorm's
    running mean is the mean of that layer's input over the training clips, not the lagging average."""
    from benchmarks.data.videos import VideoDataset, VideoIndex, make_loader
    from benchmarks.engine.runs import eval_sampling, load_trained
    from benchmarks.engine.train import train

    config = proxy.ProxyConfig(data=str(tmp_path / "data"), work=str(tmp_path / "work"), train_videos=12,
                               val_videos=3, test_videos=3, epochs=1, batch_size=4, num_workers=0)
    proxy.prepare_data(config)
    control = next(variant for variant in proxy.VARIANTS if variant.row == 3 and not variant.grw)
    summary = train(proxy.train_config(config, control, seed=0))
    path = proxy.recalibrate_batchnorm(summary["last_checkpoint"], config.data, batch_size=4)
    assert path.name == "precise_bn.pt"

    trained, precise = load_trained(summary["last_checkpoint"], "raw"), load_trained(path, "raw")
    assert precise.checkpoint["precise_bn"] == {"from": "last.pt", "videos": 12, "batchnorms": 34}
    first = next(m for m in precise.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    name = next(n for n, m in precise.model.named_modules() if m is first)
    inputs = []
    handle = dict(trained.model.named_modules())[name].register_forward_pre_hook(
        lambda module, args: inputs.append(args[0].mean(dim=(0, 2, 3))))
    index = VideoIndex.build(config.data, "train", classes=trained.classes)
    with torch.no_grad():
        for videos, _, _ in make_loader(VideoDataset(index, eval_sampling(trained.spec, trained.model, views=False),
                                                     train=False), 4, num_workers=0):
            trained.model(videos)
    handle.remove()
    expected = torch.stack(inputs).mean(0)  # 3 batches of 4 clips: the mean of batch means is the mean
    assert torch.allclose(first.running_mean, expected, atol=1e-5)
    stale = dict(trained.model.named_modules())[name].running_mean
    assert not torch.allclose(stale, expected, atol=1e-2)  # momentum 0.01: the trained statistics lag
    weights = {k: v for k, v in precise.model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in weights.items())  # weights untouched

    # A subset spread over the split (its classes are stored one after the other), as the proxy uses.
    subset = load_trained(proxy.recalibrate_batchnorm(summary["last_checkpoint"], config.data, batch_size=4,
                                                      videos=6), "raw")
    assert subset.checkpoint["precise_bn"]["videos"] == 6
    assert not torch.allclose(subset.model.state_dict()[name + ".running_mean"], first.running_mean)
