"""Table 1 of the GRW paper (Kinetics-600 by GFLOPs).

For now this prints the published numbers only; every value shown is as published.
"""

from __future__ import annotations

import argparse

import pandas as pd
from tabulate import tabulate

from benchmarks.paths import published_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    table = pd.read_csv(published_dir() / "table1.csv")
    print("Table 1 (Kinetics-600), PUBLISHED numbers (Goldman et al., NeurIPS 2025); nothing here is measured.")
    print(tabulate(table, headers="keys", tablefmt="github", showindex=False))
    return 0
