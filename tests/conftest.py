"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from benchmarks.toydata import ToyDataset, write_motion_dataset


@pytest.fixture(scope="session")
def tiny_kinetics(tmp_path_factory: pytest.TempPathFactory) -> ToyDataset:
    """A tiny Kinetics-format dataset of real mp4 files, written once per test session.

    Three classes that differ only in motion direction ("down", "left", "right"), 64 px, 24-40
    frames at 10 fps; train (6 videos per class) and val (3 per class) with annotation CSVs, and in
    train one broken file of each kind (see ``benchmarks.toydata``). Shared by all tests: copy it
    (``shutil.copytree``) before changing any file in it.
    """
    return write_motion_dataset(tmp_path_factory.mktemp("tiny_kinetics"))
