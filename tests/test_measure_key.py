"""The Table 1 measurement cache key (``benchmarks.table1.measure.cache_key``): every stored record is
fresh, and the key follows what determines the numbers, not where or how the code is written."""

import dataclasses
import importlib.metadata
import importlib.util
import json
import sys

import pytest
import torch
from torch import nn

from benchmarks.core import counting
from benchmarks.core.paths import REPO_ROOT
from benchmarks.table1 import measure, specs
from benchmarks.table1.specs import get_spec, implemented_specs

MEASURED = REPO_ROOT / "results" / "measured"


class _Refuse:
    """Stands in for fvcore's counter and torch's profiler: computing keys must not measure."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("computing a cache key measured something")


@pytest.fixture
def no_measuring(monkeypatch):
    monkeypatch.setattr(counting, "FlopCountAnalysis", _Refuse())
    monkeypatch.setattr(counting, "profile", _Refuse())


def test_every_stored_measurement_has_the_key_of_the_current_code(no_measuring):
    records = [json.loads(path.read_text()) for path in sorted(MEASURED.glob("*.json"))]
    assert {r["row"] for r in records if r["device"] == "cpu"} == {s.row for s in implemented_specs()}
    stale = [f"row {r['row']} on {r['device']}: stored {r['key']}, current {key}"
             for r in records if (key := measure.cache_key(get_spec(r["row"]), r["device"])) != r["key"]]
    assert not stale, ("stored measurements are stale; re-measure from a clean tree with "
                       "`python -m benchmarks.run table1 --refresh`:\n" + "\n".join(stale))


# --------------------------------------------------------------------------- a model in a module of its own

TOY = '''
"""A toy video network."""
import torch
from torch import nn

SCALE = 2  # a constant the forward uses


def squash(x):
    """A helper the forward calls."""
    return torch.tanh(x) * SCALE


class Toy(nn.Module):
    """A convolution and a classifier."""

    def __init__(self, channels=8, kernel=3):
        super().__init__()
        self.conv = nn.Conv3d(3, channels, kernel, padding=kernel // 2)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        # pool over time and space
        x = squash(self.conv(x))
        return self.head(x.mean((2, 3, 4)))


def unrelated():
    return 1
'''


def _module(tmp_path, monkeypatch, name, source):
    path = tmp_path / name.replace(".", "_") / "model.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _toy_hash(tmp_path, monkeypatch, source, name="toy_a", **options):
    return measure.model_hash(_module(tmp_path, monkeypatch, name, source).Toy(**options))


REWORDED = (TOY.replace('"""A convolution and a classifier."""', '"""Reworded.\n\n    Two lines."""')
            .replace('"""A helper the forward calls."""', "")
            .replace("# pool over time and space", "# another comment\n        # and one more")
            .replace("self.conv = nn.Conv3d(3, channels, kernel, padding=kernel // 2)",
                     "self.conv = nn.Conv3d(\n            3, channels, kernel,\n            padding=kernel // 2,\n"
                     "        )  # reformatted")
            .replace("\n\nclass Toy", "\n\n\n# a new comment\n\nclass Toy"))
UNRELATED = TOY.replace("return 1", "return 2") + '''

class Other(nn.Module):
    def forward(self, x):
        return x * 3
'''


@pytest.mark.parametrize("source, name", [
    (TOY, "toy_b"),  # the same code, again
    (REWORDED, "toy_b"),  # docstrings, comments, formatting
    (TOY, "somewhere.else.moved"),  # the module moved (another name and file)
    (UNRELATED, "toy_b"),  # an unrelated class added and an unrelated function changed
])
def test_the_key_ignores_how_and_where_the_code_is_written(tmp_path, monkeypatch, source, name):
    assert _toy_hash(tmp_path, monkeypatch, source, name) == _toy_hash(tmp_path, monkeypatch, TOY)


@pytest.mark.parametrize("source, options", [
    (TOY, {"channels": 16}),  # architecture: channels
    (TOY, {"kernel": 5}),  # architecture: kernel
    (TOY.replace("padding=kernel // 2)", "padding=kernel // 2, bias=False)"), {}),  # a layer's code
    (TOY.replace("x.mean((2, 3, 4))", "x.amax((2, 3, 4))"), {}),  # the forward
    (TOY.replace("torch.tanh(x)", "torch.sigmoid(x)"), {}),  # a helper the forward calls
    (TOY.replace("SCALE = 2", "SCALE = 3"), {}),  # a constant the forward uses
])
def test_the_key_follows_the_architecture_and_the_forward(tmp_path, monkeypatch, source, options):
    assert _toy_hash(tmp_path, monkeypatch, source, "toy_b", **options) != _toy_hash(tmp_path, monkeypatch, TOY)


# --------------------------------------------------------------------------- the rows, the counting code


def test_the_key_follows_the_rows_input_not_its_labels():
    spec = get_spec(5)
    key = measure.cache_key(spec, "cpu")
    for change in ({"frames": 8}, {"res": 160}, {"clips": 2}, {"crops": 3}, {"model": "x3d_m"}):
        assert measure.cache_key(dataclasses.replace(spec, **change), "cpu") != key, change
    assert measure.cache_key(spec, "cuda") != key
    for change in ({"name": "renamed"}, {"published_top1": 1.0}, {"not_implemented_reason": "reworded"}, {"fps": 3}):
        assert measure.cache_key(dataclasses.replace(spec, **change), "cpu") == key, change


def test_the_model_hash_follows_the_network_built(monkeypatch):
    assert measure.model_code_hash(get_spec(5)) == measure.model_code_hash(get_spec(14))  # same network, 3 crops
    assert measure.model_code_hash(get_spec(2)) != measure.model_code_hash(get_spec(7))  # MoViNet-A0 vs -A1
    head = dataclasses.replace(get_spec(1).grw, embed_dim=128)
    assert measure.model_code_hash(dataclasses.replace(get_spec(1), grw=head)) != measure.model_code_hash(get_spec(1))
    before = measure.model_code_hash(get_spec(5))
    build = specs.build_model

    def other_first_convolution(spec):
        model = build(spec)
        name = next(name for name, module in model.named_modules() if isinstance(module, nn.Conv3d))
        parent, _, child = name.rpartition(".")
        conv = model.get_submodule(name)
        setattr(model.get_submodule(parent), child,  # the same layer with another kernel
                nn.Conv3d(conv.in_channels, conv.out_channels, (1, 5, 5), conv.stride, (0, 2, 2), bias=False))
        return model

    monkeypatch.setattr(specs, "build_model", other_first_convolution)
    assert measure.model_code_hash(get_spec(5)) != before


def count_params(model: nn.Module) -> int:
    """The same counter as benchmarks.core.counting's, its docstring reworded."""
    # and a comment
    return sum(p.numel() for p in model.parameters())


def count_params_with_buffers(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())


def test_the_key_follows_the_counting_code(monkeypatch):
    before = measure.counting_hash()
    monkeypatch.setattr(measure, "count_params", count_params)
    assert measure.counting_hash() == before  # only the docstring and a comment differ
    for module, name, value in [
        (measure, "count_params", count_params_with_buffers),  # a counter
        (counting, "_EXCLUDED_OPS", counting._EXCLUDED_OPS[1:]),  # the counting convention (layer norm counted)
        (measure, "STREAM_CHUNK", 4),  # how the inference is run
    ]:
        with monkeypatch.context() as patch:
            patch.setattr(module, name, value)
            assert measure.counting_hash() != before, name


def test_library_releases_are_provenance_not_key(monkeypatch):
    """Another torch (a GPU machine's 2.11, a new PyPI release) keeps the stored measurements."""
    def versions(torch_version):
        real = importlib.metadata.version
        monkeypatch.setattr(importlib.metadata, "version",
                            lambda name: torch_version if name == "torch" else real(name))
        return measure.counting_hash()

    assert versions("2.14.1+cu130") == versions("2.11.0") == versions("2.15.0")


def test_computing_all_keys_takes_seconds_and_measures_nothing(no_measuring):
    import time

    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        state = torch.random.get_rng_state()
        for spec in implemented_specs():
            measure.cache_key(spec, "cpu")
        assert torch.equal(torch.random.get_rng_state(), state)  # nothing was initialised on the CPU
    assert time.perf_counter() - started < 30
