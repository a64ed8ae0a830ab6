"""The measurement of a Table 1 row (``measure_row``): GFLOPs per video, parameters and peak memory of
one video's inference, cached in the results store under a key of what determines those numbers
(``cache_key``). The counters themselves are ``benchmarks.core.counting``.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import sys
import textwrap
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmarks.core.counting import LogitsOnly, count_params, dispatch_count_model, fvcore_count, peak_memory_mb
from benchmarks.core.store import Store, provenance, read_json

if TYPE_CHECKING:
    from benchmarks.table1.specs import RowSpec

STREAM_CHUNK = 1  # frames per streaming call when measuring a stream row: frame by frame, as deployed


def one_video_inference(model: nn.Module, spec: RowSpec, device: str) -> Callable[[], None]:
    """One video's inference the way the row is deployed: views one after another, stream rows
    frame by frame with their state."""

    def run() -> None:
        with torch.inference_mode():
            for _ in range(spec.views):
                if spec.streaming:
                    state = None
                    for _ in range(0, spec.frames, STREAM_CHUNK):
                        chunk = torch.zeros(1, 3, STREAM_CHUNK, spec.res, spec.res, device=device)
                        _, state = model.forward_stream(chunk, state)
                else:
                    model(torch.zeros(spec.clip_shape, device=device))

    return run


def measure_spec(spec: RowSpec, device: str) -> dict:
    """GFLOPs per video (per view x views), parameters and peak memory of one Table 1 row's model.

    ``counters`` holds both independent counts of one view (one forward pass of the whole clip, stream
    rows included), each with its per-operator split and what it did not count: fvcore's trace
    (``gflops`` is its convention count) and ``FlopCounterMode`` at the dispatcher, on the meta device.
    """
    from benchmarks.table1.specs import build_model

    torch.manual_seed(0)
    model = build_model(spec).eval()
    counters = {
        "fvcore": fvcore_count(LogitsOnly(model), spec.clip_shape),
        "FlopCounterMode": dispatch_count_model(lambda: LogitsOnly(build_model(spec)), spec.clip_shape),
    }
    gflops_per_view = counters["fvcore"]["gmacs"]
    model.to(device).eval()
    memory_mb, memory_method = peak_memory_mb(model, one_video_inference(model, spec, device), device)
    return {
        "gflops_per_view": gflops_per_view,
        "gflops": gflops_per_view * spec.views,
        "params": count_params(model),
        "peak_memory_mb": memory_mb,
        "memory_method": memory_method,
        "memory_mode": f"streaming, {STREAM_CHUNK} frame(s) per call" if spec.streaming else "whole clip",
        "counters": counters,
    }


# --------------------------------------------------------------------------- the cache key
#
# A stored measurement is valid while what determines its numbers is unchanged: the row's input and
# model settings, the model as built, the code it runs and the counting code. Code counts as its syntax
# tree without docstrings and positions, taken from the object itself (not from its file), so comments,
# docstrings, formatting, moving a module or adding unrelated code do not invalidate a row. The libraries
# (torch, torchvision, fvcore) are not in the key: their releases are the record's provenance (``torch``),
# so a checkout installed with another torch (a GPU machine's, next month's PyPI release) keeps the stored
# numbers, labelled with the torch they were measured with, instead of re-measuring every row.

VERSIONED = ("torch", "torchvision", "fvcore")  # library code: never hashed as source
COUNTING_ROOTS = ("measure_spec",)  # functions of this module that produce the numbers
_MISSING = object()


def cache_key(spec: RowSpec, device: str) -> str:
    """``<input>-<model>-<counting>-<device>``, the key of a row's stored measurement on ``device``.

    - input: the row's fields that reach the measurement (registry model, GRW settings, frames,
      resolution, clips, crops), not its name, published numbers, sampling fps or notes;
    - model (:func:`model_code_hash`): the network as built, structure and code, without measuring;
    - counting (:func:`counting_hash`): ``measure_spec`` and the suite code it calls (the counters of
      ``benchmarks.core.counting``); library releases are provenance, not key.
    """
    grw = dataclasses.asdict(spec.grw) if spec.grw else None
    fields = {"model": spec.model, "grw": grw, "frames": spec.frames, "res": spec.res,
              "clips": spec.clips, "crops": spec.crops}
    return f"{_digest(fields)}-{model_code_hash(spec)}-{counting_hash()}-{device}"


def model_code_hash(spec: RowSpec) -> str:
    """Hash of the row's network, built on the meta device (no memory, no weights): see :func:`model_hash`."""
    from benchmarks.table1.specs import build_model

    with torch.device("meta"):
        return model_hash(build_model(spec))


def model_hash(model: nn.Module) -> str:
    """Hash of a network's architecture and forward: each module's name, class, ``extra_repr()`` and
    plain attributes; each parameter's and buffer's name, shape and dtype; the code of every class in it
    (base classes included) and of the suite's functions and classes that code names."""
    modules = [(name, type(module).__qualname__, module.extra_repr(), _attributes(module))
               for name, module in model.named_modules()]
    tensors = [(name, tuple(t.shape), str(t.dtype))
               for name, t in (*model.named_parameters(), *model.named_buffers())]
    classes = {cls: None for module in model.modules() for cls in type(module).__mro__}
    held = {value: None for module in model.modules() for value in vars(module).values()
            if isinstance(value, (type, types.FunctionType))}  # e.g. an activation function kept as a setting
    return _digest([modules, tensors, _code_closure([*classes, *held])])


def counting_hash() -> str:
    """Hash of the suite's code that turns a built model into the row's numbers."""
    return code_hash(*(globals()[name] for name in COUNTING_ROOTS))


def count_key(fields: dict, build: Callable[[], nn.Module], counting: Callable) -> str:
    """``<fields>-<model>-<counting>``: :func:`cache_key`'s rule for any stored count (the zoo's, the FLOP
    ledger's): the input as data, the model ``build()`` makes on the meta device, and the code of
    ``counting`` (what turns the model into the numbers; never the provenance around it)."""
    with torch.device("meta"):
        model = model_hash(build())
    return f"{_digest(fields)}-{model}-{code_hash(counting)}"


def code_hash(*roots: type | types.FunctionType) -> str:
    """Hash of the suite code of ``roots`` and of everything it calls (:func:`_code_closure`)."""
    return _digest([_code_closure(list(roots))])


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _attributes(module: nn.Module) -> list:
    """A module's public plain attributes (``training`` aside): settings ``extra_repr`` may not show."""
    return sorted((name, _plain(value)) for name, value in vars(module).items()
                  if not name.startswith("_") and name != "training" and _plain(value) is not None)


def _plain(value: object) -> object:
    """``value`` as JSON-able data when it is a setting (number, string, sequence or mapping of them,
    a class or function by name), else None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return None if None in items else items
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return None if None in items.values() else items
    if isinstance(value, (type, types.FunctionType)):
        return value.__qualname__
    return None


def _code_closure(roots: list) -> list[str]:
    """Normalised code of ``roots`` and of every function, class and constant their code names
    (module globals, ``module.attribute``), recursively; the standard library and :data:`VERSIONED`
    libraries are not followed."""
    code: dict[int, str] = {}
    todo = [obj for obj in roots if _followed(obj)]
    while todo:
        obj = todo.pop()
        if id(obj) in code:
            continue
        tree, names = _source_tree(obj)
        module = vars(sys.modules[obj.__module__]) if obj.__module__ in sys.modules else {}
        constants = {}
        for name in names:
            found = module.get(name[0], _MISSING)
            if len(name) == 2:  # module.attribute
                found = getattr(found, name[1], _MISSING) if isinstance(found, types.ModuleType) else _MISSING
            found = inspect.unwrap(found) if callable(found) and hasattr(found, "__wrapped__") else found
            if isinstance(found, (type, types.FunctionType)):
                todo.extend([found] if _followed(found) else [])
            elif found is not _MISSING and _immutable(found):
                constants[".".join(name)] = repr(found)
        code[id(obj)] = tree + json.dumps(constants, sort_keys=True)
    return sorted(code.values())


@functools.cache
def _source_tree(obj: type | types.FunctionType) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """The syntax tree of a class's or function's source without docstrings, and the names it uses
    (``name`` or ``name.attribute``), to look up in its module."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError):  # no source (built at run time, compiled): its name stands for it
        return f"{obj.__module__}.{obj.__qualname__}", ()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
        if isinstance(node, ast.Name):
            names.add((node.id,))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add((node.value.id, node.attr))
    return ast.dump(tree, include_attributes=False), tuple(sorted(names))


def _immutable(value: object) -> bool:
    """A constant whose value is part of the code that names it (mutable globals, registries and caches are not)."""
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _followed(obj: object) -> bool:
    """Whether code is hashed as source: not for the standard library, nor for the versioned libraries."""
    top = (getattr(obj, "__module__", None) or "builtins").split(".")[0]
    return top not in sys.stdlib_module_names and top not in VERSIONED and top != "builtins"


# --------------------------------------------------------------------------- Table 1 measurements


def measure_row(spec: RowSpec, device: str, command: str | None = None) -> dict:
    """Build the row's model and measure it; returns the JSON record stored in ``measured/``.

    ``command`` is the user's command line when this runs as a submitit task (whose own command
    line is submitit's job script)."""
    started = time.perf_counter()
    numbers = measure_spec(spec, device)
    return {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None,
        "input": {"res": spec.res, "frames": spec.frames, "clips": spec.clips, "crops": spec.crops},
        **numbers,
        "device": device,
        "key": cache_key(spec, device),
        "seconds": round(time.perf_counter() - started, 2),
        **provenance(device),
        **({"command": command} if command else {}),
    }


def cached_measurement(spec: RowSpec, device: str, store: Store) -> dict | None:
    """The stored measurement of the row when it was made with the current code, else None."""
    path = store.measurement_path(spec.row, device)
    if not path.exists():
        return None
    record = read_json(path)
    return record if record.get("key") == cache_key(spec, device) else None


def rows_to_measure(specs: list[RowSpec], device: str, store: Store, refresh: bool = False) -> list[RowSpec]:
    """The rows without a valid cached measurement (all of them with ``refresh``)."""
    return [spec for spec in specs if refresh or cached_measurement(spec, device, store) is None]
