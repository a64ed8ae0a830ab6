"""The training methods and schedules of the seed papers, one folder each; a folder registers its method
or schedule, its subcommands and its reports in its ``__init__``. A new method is a new folder and one
line here. Nothing below this package imports it: ``benchmarks.core.registry.discover`` does, by name.
"""

from benchmarks.methods import a3d, multigrid, vared2  # noqa: F401  (one line per method)
