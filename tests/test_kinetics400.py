"""The published Kinetics-400 numbers of A3D and VA-RED2: read from results/published as published, drawn
in their own figure (never the Kinetics-600 one) and listed by compare."""

from benchmarks.run import main as run_main
from benchmarks.table1 import kinetics400


def test_points_are_the_published_ones_with_their_sources():
    points = kinetics400.published_points().set_index("label")
    assert points.loc["A3D-Slow-8x8-[0.016,1] x0.016", ["gflops", "top1"]].tolist() == [0.9, 64.1]  # A3D Table 1
    assert points.loc["Slow-8x8-R", "method"] == "baseline"
    x3d = points[points["series"] == "X3D 16 frames"].set_index("method")
    assert x3d.loc["VA-RED2", ["gflops", "top1"]].tolist() == [5.38, 72.4]  # VA-RED2 Table 5
    assert x3d.loc["baseline", ["gflops", "top1"]].tolist() == [6.42, 70.6]
    assert points["source"].str.contains("Table").all()
    assert set(points["paper"]) == {"A3D (seed 002)", "VA-RED2 (seed 004)"}


def test_figures_draw_them_apart_and_compare_lists_them(tmp_path, capsys):
    assert run_main(["figures", "--results", str(tmp_path)]) == 0
    assert (tmp_path / kinetics400.FIGURE).stat().st_size > 10_000
    run_main(["compare", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert "published on Kinetics-400 (not Kinetics-600" in out and "A3D-SlowFast-4x16-[0.06,1] x0.25" in out
