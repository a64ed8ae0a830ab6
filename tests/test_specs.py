import csv
from pathlib import Path

import pytest

from benchmarks.table1.specs import all_specs, get_spec, implemented_specs, parse_rows

PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "published" / "table1.csv"


def published_rows():
    with open(PUBLISHED, newline="") as f:
        return list(csv.DictReader(f))


def test_all_31_rows_match_the_published_csv():
    specs, rows = all_specs(), published_rows()
    assert len(specs) == len(rows) == 31
    for spec, row in zip(specs, rows):
        assert spec.row == int(row["row"])
        assert spec.name == row["model"]
        assert spec.published_top1 == float(row["top1"])
        assert spec.published_gflops == float(row["gflops"])
        assert spec.res == int(row["res"])
        assert spec.views == int(row["clips"])
        assert spec.frames == int(row["frames_per_clip"])
        assert spec.implemented == (row["implemented_here"] == "yes")
        assert (spec.grw is not None) == (row["grw"] == "true")


def test_implemented_rows_name_registry_models():
    import baselines

    for spec in implemented_specs():
        assert spec.model in baselines.available(), spec
        assert spec.fps and spec.eval_resize >= spec.res
    assert {s.row for s in all_specs() if not s.implemented} == {20, 23, 26, 27, 28, 29, 31}


def test_multi_view_rows_split_into_clips_and_crops():
    assert (get_spec(14).clips, get_spec(14).crops) == (10, 3)
    assert get_spec(14).views == 30
    assert get_spec(13).views == 1


def test_lookup_by_number_and_name():
    assert get_spec(1).name == "MoViNet-A0-S-GRW"
    assert get_spec("15").model == "movinet_a3"
    assert get_spec("movinet-a0-s-grw").row == 1
    assert get_spec(1).streaming and not get_spec(2).streaming


@pytest.mark.parametrize("key, message", [(99, "valid rows are 1: MoViNet-A0-S-GRW"), ("X3D-M", "ambiguous"),
                                          ("nope", "unknown Table 1 row")])
def test_unknown_or_ambiguous_rows_fail_clearly(key, message):
    with pytest.raises(ValueError, match=message):
        get_spec(key)


def test_parse_rows_refuses_unimplemented_rows():
    assert [s.row for s in parse_rows("1, 2,5")] == [1, 2, 5]
    assert len(parse_rows(None)) == 24
    with pytest.raises(ValueError, match="not implemented.*20"):
        parse_rows("1,20")


def test_spec_key_changes_with_the_spec():
    import dataclasses

    spec = get_spec(2)
    assert spec.key() == get_spec(2).key()
    assert dataclasses.replace(spec, frames=49).key() != spec.key()
