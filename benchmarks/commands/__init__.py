"""Subcommands whose library lives elsewhere (``benchmarks.run`` imports them; nothing else does).

``train`` (library: ``benchmarks.engine.runs``, ``benchmarks.engine.train``), ``eval`` (``benchmarks.engine.evaluate``)
and ``table1`` (``benchmarks.table1.measure``, ``benchmarks.table1.report``); each launches its tasks through
``benchmarks.engine.launch``, training and evaluation as the tasks of ``benchmarks.engine.tasks``.
"""
