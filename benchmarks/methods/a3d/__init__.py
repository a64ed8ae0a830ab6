"""A3D (seed 002): one adaptive X3D over width x side x frames (``train --method a3d``, ``eval --sweep``,
``a3d-cost``, ``a3d-study``)."""

from benchmarks.engine.method import METHODS

METHODS.register("a3d", "benchmarks.methods.a3d.method:A3DMethod")
