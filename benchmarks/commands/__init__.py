"""Subcommands whose library lives elsewhere (``benchmarks.run`` imports them; nothing else does).

``train`` (library: ``benchmarks.runs``, ``benchmarks.train``), ``eval`` (``benchmarks.evaluate``)
and ``table1`` (``benchmarks.measure``, ``benchmarks.report``); each launches its tasks through
``benchmarks.launch``, training and evaluation as the tasks of ``benchmarks.slurm_tasks``.
"""
