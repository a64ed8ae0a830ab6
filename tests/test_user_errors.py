"""One rule for bad input: every user error ends with exit status 2 and one line naming the problem and
what to do, before anything is launched or written; no traceback unless ``--debug``. Each bad input
goes through the real command line (``benchmarks.run.main``, and a real process where it matters)."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.core.paths import REPO_ROOT
from benchmarks.run import main as run_main

TINY_TRAIN = ["--row", "5", "--frames", "4", "--res", "32", "--epochs", "1", "--batch-size", "2", "--num-workers", "0",
              "--no-val"]


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture
def readonly(tmp_path):
    """A read-only folder: a read-only tmpfs when running as root (root writes through permissions), else
    a folder without write permission."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], check=True)
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.fixture
def unreadable_videos(tmp_path):
    """A Kinetics-format root whose class folders hold files that are not videos."""
    root = tmp_path / "broken"
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(3):
                (root / split / label / f"{i}.mp4").write_bytes(b"not a video")
    return root


def assert_one_line_error(capsys, code: int, *words: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    lines = [line for line in err if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("flags, words", [
    (["--size", "16"], ["--size 16", "decord cannot read"]),
    (["--size", "33"], ["--size must be an even number"]),
    (["--frames", "0"], ["--frames must be >= 1"]),
    (["--train", "-1"], ["--train must be >= 0"]),
])
def test_airplanes_bad_values(tmp_path, capsys, flags, words):
    out = tmp_path / "planes"
    assert_one_line_error(capsys, run_main(["airplanes", "--out", str(out), *flags]), *words)
    assert not out.exists()


def test_unwritable_outputs_are_one_line(tmp_path, readonly, capsys, tiny_kinetics):
    assert_one_line_error(capsys, run_main(["airplanes", "--out", str(readonly / "planes"), "--train", "1"]),
                          "not writable")
    out = readonly / "run"
    code = run_main(["train", *TINY_TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out)])
    assert_one_line_error(capsys, code, "--out", "not writable")
    # figures on a read-only store: the operating system's refusal, reported as one line
    assert_one_line_error(capsys, run_main(["figures", "--results", str(readonly)]), "read-only file system"
                          if os.geteuid() == 0 else "permission denied")


def test_data_without_readable_videos(tmp_path, capsys, unreadable_videos):
    out = tmp_path / "out"
    code = run_main(["train", *TINY_TRAIN, "--data", str(unreadable_videos), "--out", str(out)])
    assert_one_line_error(capsys, code, "no readable video")
    assert not files_under(out)
    empty = tmp_path / "empty"
    (empty / "train" / "a").mkdir(parents=True)
    code = run_main(["train", *TINY_TRAIN, "--data", str(empty), "--out", str(out)])
    assert_one_line_error(capsys, code, "holds no video files")


def test_init_that_does_not_fit(tmp_path, capsys, tiny_kinetics):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "out"
    args = ["train", *TINY_TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out)]
    assert_one_line_error(capsys, run_main([*args, "--init", str(truncated)]), "--init", "not a grw-bench checkpoint")
    other = tmp_path / "other.pt"  # a checkpoint of another architecture (a MobileNetV3 row)
    torch.save({"format": "grw-bench", "model": {"conv.weight": torch.zeros(2, 2)}}, other)
    assert_one_line_error(capsys, run_main([*args, "--init", str(other)]), "--init")
    assert not files_under(out)


def test_multigrid_on_too_few_videos_is_refused_before_launch(tmp_path, capsys, tiny_kinetics):
    out = tmp_path / "out"
    code = run_main(["train", *TINY_TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out),
                     "--schedule", "multigrid", "--batch-size", "64"])
    line = assert_one_line_error(capsys, code, "do not fill one batch", "video files")
    assert "tasks" not in capsys.readouterr().err and not files_under(out), line


def test_a_run_is_never_overwritten_without_resume_or_refresh(tmp_path, capsys, tiny_kinetics):
    out = tmp_path / "out"
    args = ["train", *TINY_TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out)]
    assert run_main(args) == 0
    capsys.readouterr()
    assert run_main(args) == 0  # the same finished run: skipped, not retrained
    assert "holds a finished run" in capsys.readouterr().out
    before = (out / "last.pt").read_bytes()
    grown = [arg if previous != "--epochs" else "2" for previous, arg in zip(["", *args], args)]  # one more epoch
    code = run_main(grown)
    assert_one_line_error(capsys, code, str(out), "holds a run at epoch 1", "--resume", "--refresh")
    assert (out / "last.pt").read_bytes() == before


def test_debug_shows_the_traceback(tmp_path, capsys, unreadable_videos, monkeypatch):
    monkeypatch.delenv("GRW_BENCH_DEBUG", raising=False)
    with pytest.raises(ValueError, match="no readable video"):
        run_main(["train", *TINY_TRAIN, "--data", str(unreadable_videos), "--out", str(tmp_path / "o"), "--debug"])
    assert "GRW_BENCH_DEBUG" not in os.environ  # set while the command ran (for its tasks), not after


def test_ctrl_c_saves_says_how_to_resume_and_exits_130(tmp_path, tiny_kinetics):
    data = tmp_path / "data"
    shutil.copytree(tiny_kinetics.root, data)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "benchmarks.run", "train", "--row", "5", "--frames", "4", "--res", "32",
            "--epochs", "2", "--batch-size", "1", "--num-workers", "0", "--no-val", "--log-every", "1",
            "--data", str(data), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
    for line in process.stdout:
        if line.startswith("epoch 0 step 1/"):
            process.send_signal(signal.SIGINT)
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and f"saved {out / 'last.pt'}: resume with --resume" in err
    assert (out / "last.pt").is_file()
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert '"status": "completed"' in resumed.stdout


def test_eval_and_table1_refuse_an_unwritable_store_before_working(readonly, capsys, tmp_path):
    assert_one_line_error(capsys, run_main(["table1", "--rows", "3", "--results", str(readonly)]), "--results",
                          "not writable")
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    code = run_main(["eval", "--row", "3", "--checkpoint", str(tmp_path / "ckpt.pt"), "--data", str(tmp_path),
                     "--results", str(readonly)])
    assert_one_line_error(capsys, code, "--results", "not writable")


def test_the_schedule_check_counts_the_processes_of_a_launched_run(tiny_kinetics):
    import argparse

    from benchmarks.commands.train import processes_per_run

    launched = argparse.Namespace(launch="slurm", nodes=2, tasks_per_node=None, gpus_per_node=4)
    assert processes_per_run(launched) == 8
    assert processes_per_run(argparse.Namespace(launch="local", nodes=1, tasks_per_node=2, gpus_per_node=0)) == 2
    assert processes_per_run(argparse.Namespace(launch="none", nodes=3, tasks_per_node=3, gpus_per_node=0)) == 1
