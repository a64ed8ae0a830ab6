"""The shape of ``benchmarks/`` (docs/architecture.md): layers that import only downwards, method folders
that nothing below them imports, and no import cycle (type-checking imports count)."""

from __future__ import annotations

from test_cli import benchmark_modules, imported_benchmark_modules

# Bottom to top; a module imports only modules of its own layer or below.
LAYERS = ("core", "data", "table1", "engine", "studies", "methods", "commands", "run")


def layer_of(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "run"
    return LAYERS.index(name if name in LAYERS else "run")


def test_each_layer_imports_only_layers_below_it():
    modules = benchmark_modules()
    for name, path in modules.items():
        for imported in imported_benchmark_modules(path, modules):
            assert layer_of(imported) <= layer_of(name), (
                f"{name} ({LAYERS[layer_of(name)]}) imports {imported} ({LAYERS[layer_of(imported)]})")


def test_no_method_folder_is_imported_from_outside_it():
    """A method lives in its folder: only that folder (and what sits above all methods, the commands)
    imports it; other methods and the layers below reach it through the registries."""
    modules = benchmark_modules()
    for name, path in modules.items():
        for imported in imported_benchmark_modules(path, modules):
            folder = imported.split(".")[:3]
            if imported.startswith("benchmarks.methods.") and layer_of(name) <= LAYERS.index("methods"):
                assert name.split(".")[:3] == folder or name == "benchmarks.methods", f"{name} imports {imported}"


