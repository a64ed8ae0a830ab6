"""The two FLOP counters (fvcore's trace and torch's FlopCounterMode) against counts made by hand, against
each other, and the FLOP ledger rendered from a store."""

import json

import pytest
import torch
from torch import nn

import baselines
from benchmarks.core import store
from benchmarks.core.counting import dispatch_count, dispatch_count_model, fvcore_count
from benchmarks.core.paths import REPO_ROOT
from benchmarks.run import main as run_main
from benchmarks.table1 import ledger
from benchmarks.table1.specs import get_spec


class Toy(nn.Module):
    """conv (3 -> 4, 1x3x3, same size) -> BatchNorm -> sigmoid -> mean over T, H, W -> linear (4 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.bn = nn.BatchNorm3d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sigmoid(self.bn(self.conv(x))).mean((2, 3, 4)))


TOY_INPUT = (1, 3, 2, 5, 5)
# By hand: the conv's output has 4 x 2 x 5 x 5 = 200 elements, each 3 x 1 x 3 x 3 = 27 multiply-adds;
# the linear layer 4 x 2 = 8; fvcore's BatchNorm handle adds 2 per element (eval mode, affine).
CONV_MACS, LINEAR_MACS, BATCHNORM = 200 * 27, 4 * 2, 2 * 200


def test_fvcore_counts_the_toy_by_hand():
    count = fvcore_count(Toy(), TOY_INPUT)
    assert count["gmacs"] * 1e9 == pytest.approx(CONV_MACS + LINEAR_MACS, abs=1e-6)
    assert count["total"] * 1e9 == pytest.approx(CONV_MACS + LINEAR_MACS + BATCHNORM, abs=1e-6)
    by_operator = {op: round(g * 1e9) for op, g in count["by_operator"].items()}
    assert by_operator == {"conv": CONV_MACS, "linear": LINEAR_MACS, "batch_norm": BATCHNORM}
    assert {"aten::sigmoid", "aten::mean"} <= set(count["uncounted"])
    assert count["counter"] == "fvcore" and count["version"]


def test_flop_counter_mode_counts_the_toy_by_hand_on_real_and_meta_tensors():
    model = Toy().eval()
    video = torch.rand(TOY_INPUT)
    real = dispatch_count(lambda: model(video))
    meta = dispatch_count_model(Toy, TOY_INPUT)
    for count in (real, meta):
        assert count["gmacs"] * 1e9 == pytest.approx(CONV_MACS + LINEAR_MACS, abs=1e-6)
        by_operator = {op: round(g * 1e9) for op, g in count["by_operator"].items()}
        assert by_operator == {"aten.convolution": CONV_MACS, "aten.addmm": LINEAR_MACS}
        assert {"aten.sigmoid", "aten.mean", "aten.native_batch_norm"} <= set(count["uncounted"])
    assert real["uncounted"] == meta["uncounted"]


class ConvStack(nn.Sequential):
    """Plain convolutions of every kind the zoo uses: 3D, strided, grouped, depthwise, pointwise; then linear."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 8, (3, 3, 3), stride=(1, 2, 2), padding=1),
            nn.ReLU(),
            nn.Conv3d(8, 16, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), groups=4),
            nn.Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0), groups=16),
            nn.Conv3d(16, 24, 1),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(24, 10),
        )


def test_the_two_counters_agree_on_a_plain_convolution_stack():
    shape = (2, 3, 6, 20, 20)
    fv = fvcore_count(ConvStack(), shape)
    fcm = dispatch_count_model(ConvStack, shape)
    assert fcm["gmacs"] == pytest.approx(fv["gmacs"], rel=1e-12)
    assert fv["total"] == fv["gmacs"]  # nothing outside the convention in this stack
    assert fv["gmacs"] > 0


def test_a_zoo_model_counts_the_same_on_the_meta_device_and_on_real_tensors():
    model = baselines.build("movinet_a0_stream").eval()
    shape = (1, 3, 4, 48, 48)
    video = torch.zeros(shape)
    real = dispatch_count(lambda: model(video))
    meta = dispatch_count_model(lambda: baselines.build("movinet_a0_stream"), shape)
    assert real["gmacs"] == meta["gmacs"] and real["by_operator"] == meta["by_operator"]
    assert fvcore_count(model, shape)["gmacs"] == pytest.approx(real["gmacs"], rel=1e-9)


# --------------------------------------------------------------------------- the ledger from a store


def _measurement(row: int, conv: float, total: float, fcm: float) -> dict:
    spec = get_spec(row)
    views = spec.views
    return {"row": row, "gflops": conv, "params": 1_000_000, "peak_memory_mb": 10.0, "memory_method": "fixture",
            "device": "cpu", "key": "fixture",
            "input": {"res": spec.res, "frames": spec.frames, "clips": spec.clips, "crops": spec.crops},
            "counters": {
                "fvcore": {"gmacs": conv / views, "total": total / views, "by_operator": {}, "uncounted": {}},
                "FlopCounterMode": {"gmacs": fcm / views, "by_operator": {}, "uncounted": {}}}}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))

    def no_models(*args, **kwargs):
        raise AssertionError("rendering the ledger must not build models")

    monkeypatch.setattr("baselines.build", no_models)
    return tmp_path


def test_the_ledger_renders_from_the_store(results):
    write = lambda row, *counts: store.write_json(results / "measured" / f"row{row:02d}-cpu.json",  # noqa: E731
                                                   _measurement(row, *counts))
    write(3, 2.81, 2.95, 2.81)  # within 2 % of the published 2.8
    write(5, 4.19, 4.33, 4.19)  # +7 %: X3D-XS, explained by its 160 px counterfactual
    write(2, 2.63, 2.76, 2.63)  # -2.6 %: the published 2.7 lies between conv+linear and fvcore's total
    write(10, 12.0, 12.5, 12.0)  # +9 %: MobileNetV3-L has no stated cause
    store.write_json(results / "measured" / "ledger" / "row05-x3d-xs-160px.json", {"gmacs": 3.907})
    assert run_main(["figures"]) == 0
    text = (results / "flop_ledger.md").read_text()
    lines = {line.split(":")[0]: line for line in text.splitlines() if line.startswith("row ")}
    assert "explained: 160 px x (182/160)^2: 3.91 (+0.2%)" in lines["row 5"]
    assert "explained: fvcore total 2.76 (+2.2%): published between conv+lin and total" in lines["row 2"]
    assert lines["row 10"].startswith("row 10: unexplained")
    assert "row 3" not in lines  # within 2 %: nothing to explain
    assert "open:" in lines["row 9"] or "not measured" in lines["row 9"]
    assert all(len(line) <= ledger.WIDTH for line in text.splitlines() if not line.startswith("|"))
    verdicts = ledger.verdicts(store.Store.default())
    assert [verdicts[row].status for row in (3, 5, 2, 10, 20)] == [
        "within", "explained", "explained", "unexplained", "published only"]


# --------------------------------------------------------------------------- the stored ledger


def test_every_counterfactual_is_stored_and_fresh():
    measured = REPO_ROOT / "results" / "measured" / "ledger"
    wanted = [cf for cf in ledger.all_counterfactuals() if cf.model is None or cf.model in baselines.available()]
    stale = []
    for cf in wanted:
        path = measured / f"{cf.name}.json"
        record = json.loads(path.read_text()) if path.exists() else {}
        if record.get("key") != ledger.counterfactual_key(cf):
            stale.append(cf.name)
    assert not stale, ("counterfactual counts missing or stale; re-count from a clean tree with "
                       "`python -m benchmarks.run table1`: " + ", ".join(stale))


def test_keys_do_not_depend_on_the_command_line_being_run(monkeypatch):
    """The command line is provenance (a run-time global of the store), never part of a count's key."""
    from benchmarks.table1 import zoo

    cf = ledger.counterfactual("row05-x3d-xs-160px")
    ref = next(zoo.load_published_models().query("model == 'x3d_xs'").itertuples())
    before = ledger.counterfactual_key(cf), zoo.zoo_key(ref)
    monkeypatch.setattr(store, "_cli_command", "python -m benchmarks.run table1 --refresh")
    assert (ledger.counterfactual_key(cf), zoo.zoo_key(ref)) == before
