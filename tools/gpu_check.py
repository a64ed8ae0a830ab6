"""The one-shot GPU check of issue 28: CUDA peak memory per Table 1 row, AMP training and evaluation of every
row family, multigrid / A3D / VA-RED2 steps, GPU speed, and DDP on NCCL at world size 1.

Entry point: ``bash tools/gpu_check.sh`` (installs the carried wheels, then runs this). Every step is one of
the suite's own commands (``python -m benchmarks.run ...``, or ``torch.distributed.run`` for DDP), run as a
subprocess with its own timeout; a failing or timed-out step is logged and the next one runs. Three lanes run
side by side, since none measures what the others share: ``table1`` (its GFLOPs are counted by fvcore on the
CPU; its CUDA peak memory is per process), the family trainings with their evaluations, and the multigrid /
A3D / VA-RED2 / DDP trainings (small models on tiny clips). ``speed`` runs after them, alone on the GPU, so
that its timings share the machine with nothing.

Outputs (``--out``, the device tool's ``$OUT``): ``gpu_check.json`` and ``gpu_check.md`` (every step: command,
exit status, seconds, checks, tail of its output; rewritten after each step), and ``gpu_check.tar.gz`` with
``results/`` (a copy of the checkout's results store plus what this run measured: ``measured/rowNN-cuda.json``,
``runs/speed/``, re-rendered tables; ``new_results.txt`` lists the new and changed files), ``train/`` (the
training runs without checkpoints, and the store their evaluations went to) and ``logs/`` (each step's
whole output).

``--device cpu`` runs the same steps on the CPU with a few rows and tiny sizes (a dry run of the script;
CUDA-only checks are skipped). Nothing here writes a number by hand: every number comes from a command.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = ("-m", "benchmarks.run")

# The generated videos (the suite's `airplanes` command): 3 classes, 64 training videos (enough for
# multigrid's largest batch at batch size 2), 16 frames of 64 px at 8 fps.
DATA_ARGS = ("--train", "64", "--val", "12", "--test", "12", "--frames", "16", "--size", "64", "--fps", "8")

# Rows trained, one per family: stream MoViNet with the GRW head, base MoViNet with the GRW head,
# MobileNetV3-S + TSM with GRW taps, X3D-XS.
# torch's threads in each training process: table1's fvcore counting (on the CPU) runs beside them.
LANE_THREADS = {"OMP_NUM_THREADS": "3"}
TRAINED_ROWS = {"row01_movinet_stream_grw": ("1",), "row15_movinet_base_grw": ("15",),
                "row04_mobilenet_tsm_grw_taps": ("4", "--grw"), "row05_x3d": ("5",)}


@dataclass(frozen=True)
class Profile:
    """Sizes of one kind of run: the real one on CUDA, or a dry run on the CPU."""

    device: str
    table1_rows: str | None  # None: every implemented row
    speed_rows: str | None
    speed_args: tuple[str, ...]
    res: int
    epochs: int
    num_workers: int
    budget_s: float  # the whole script, speed included
    speed_reserve_s: float  # kept free for the two speed runs at the end
    timeout_factor: float = 1.0  # on every step's timeout (a 2-core CPU trains far slower than a GPU)

    def train_args(self) -> tuple[str, ...]:
        """Input and recipe of the family trainings: tiny clips, the recipe's AMP (bf16; CUDA only)."""
        return ("--frames", "8", "--res", str(self.res), "--fps", "8", "--batch-size", "4", "--amp", "bf16",
                "--device", self.device, "--num-workers", str(self.num_workers), "--log-every", "1",
                "--ema-decay", "0.9", "--warmup-epochs", "0.5", "--lr", "0.002")


PROFILES = {
    "cuda": Profile("cuda", None, None, ("--warmup", "3", "--repeats", "20", "--max-seconds", "1.5"),
                    res=64, epochs=3, num_workers=4, budget_s=400, speed_reserve_s=150),
    "cpu": Profile("cpu", "3,5", "1,3", ("--warmup", "1", "--repeats", "3", "--max-seconds", "1"),
                   res=32, epochs=2, num_workers=1, budget_s=900, speed_reserve_s=120, timeout_factor=3.0),
}


# --------------------------------------------------------------------------- steps and their log


@dataclass
class Step:
    """One command of the check; ``checks`` read its outputs and return the problems found."""

    name: str
    argv: list[str]
    timeout_s: float
    env: dict[str, str] = field(default_factory=dict)
    checks: Callable[[], tuple[dict, list[str]]] | None = None


@dataclass
class StepResult:
    name: str
    command: str
    status: str  # ok, failed (exit status), problems (ran, but a check failed), timeout, skipped, error
    exit_code: int | None
    seconds: float
    started: str
    facts: dict = field(default_factory=dict)  # what the checks read from the step's outputs
    problems: list[str] = field(default_factory=list)
    tail: str = ""


class Log:
    """Every step's result, rewritten to ``gpu_check.json`` / ``.md`` after each step (a kill keeps them)."""

    def __init__(self, out: Path, started: float, header: dict) -> None:
        self.out, self.started, self.header = out, started, header
        self.results: list[StepResult] = []
        self.lock = threading.Lock()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        print(f"[{stamp} +{self.elapsed():5.0f}s] {text}", flush=True)

    def add(self, result: StepResult) -> None:
        with self.lock:
            self.results.append(result)
            self.write()

    def write(self) -> None:
        data = {**self.header, "elapsed_s": round(self.elapsed(), 1), "steps": [asdict(r) for r in self.results]}
        (self.out / "gpu_check.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(render_markdown(data))


def render_markdown(data: dict) -> str:
    lines = [f"# GPU check ({data['device']}), {data['date']}", "",
             f"{data['elapsed_s']:.0f} s in all; work folder `{data['work']}`.", "",
             "| step | status | exit | seconds | problems |", "|---|---|---|---|---|"]
    for step in data["steps"]:
        problems = "; ".join(step["problems"]).replace("|", "/") or "-"
        cells = (step["name"], step["status"], step["exit_code"], f"{step['seconds']:.1f}", problems)
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    for step in data["steps"]:
        lines += ["", f"## {step['name']}: {step['status']}", "", f"`{step['command']}`", ""]
        if step["facts"]:
            lines += ["```json", json.dumps(step["facts"], indent=1, default=str)[:6000], "```", ""]
        lines += ["```", step["tail"][-2500:], "```"]
    return "\n".join(lines) + "\n"


def run_step(step: Step, log: Log, logs: Path, deadline: float, factor: float = 1.0) -> StepResult:
    """Run one step as a subprocess in its own session (a timeout kills it and its children)."""
    command = " ".join(step.argv)
    started = dt.datetime.now().isoformat(timespec="seconds")
    timeout = min(step.timeout_s * factor, deadline - log.elapsed())
    if timeout < 15:
        result = StepResult(step.name, command, "skipped", None, 0.0, started,
                            problems=[f"skipped: {max(0.0, timeout):.0f} s of the budget left"])
        log.say(f"{step.name}: skipped (budget)")
        log.add(result)
        return result
    log.say(f"{step.name}: start (timeout {timeout:.0f} s): {command}")
    began = time.monotonic()
    path = logs / f"{step.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}
    with open(path, "w") as output:
        process = subprocess.Popen(step.argv, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code: int | None = process.wait(timeout=timeout)
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code, status = None, "timeout"
    result = StepResult(step.name, command, status, code, round(time.monotonic() - began, 1), started,
                        tail=_tail(path))
    if step.checks is not None:
        try:
            result.facts, result.problems = step.checks()
        except Exception as error:  # a check that cannot read its outputs is a problem of the step
            result.problems = [f"check failed: {type(error).__name__}: {error}"]
        if result.problems and status == "ok":
            result.status = "problems"
    log.say(f"{step.name}: {result.status} in {result.seconds:.0f} s" +
            (f" ({'; '.join(result.problems)[:300]})" if result.problems else ""))
    log.add(result)
    return result


def _tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(errors="replace")
    # progress bars rewrite one line with carriage returns: keep their last state
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text[-4 * chars:].splitlines())[-chars:]


def in_process(name: str, log: Log, work: Callable[[], dict]) -> None:
    """A step done in this process (no command): its failure is logged like a command's."""
    began, started = time.monotonic(), dt.datetime.now().isoformat(timespec="seconds")
    try:
        facts, problems, status = work(), [], "ok"
    except Exception as error:
        facts, problems, status = {}, [f"{type(error).__name__}: {error}"], "error"
    log.add(StepResult(name, f"(in process) {name}", status, None, round(time.monotonic() - began, 1), started,
                       facts=facts, problems=problems))
    log.say(f"{name}: {status}")


# --------------------------------------------------------------------------- what the steps check


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def environment(device: str) -> dict:
    """GPU, driver, CUDA, cuDNN and torch versions, and the packages the wheels brought."""
    import importlib.metadata

    import torch

    facts: dict = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                   "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count(),
                   "packages": {}}
    for name in ("fvcore", "iopath", "yacs", "termcolor", "submitit", "decord", "av", "torchvision", "numpy"):
        try:
            facts["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            facts["packages"][name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(gpu=torch.cuda.get_device_name(0), capability=f"{props.major}.{props.minor}",
                     gpu_memory_gib=round(props.total_memory / 2**30, 1), cudnn=torch.backends.cudnn.version(),
                     bf16_supported=torch.cuda.is_bf16_supported(), nccl=".".join(map(str, torch.cuda.nccl.version())))
    try:
        facts["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv"],
            capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        facts["nvidia_smi"] = f"not available: {error}"
    if device == "cuda" and not facts["cuda_available"]:
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return facts


def check_table1(results: Path, device: str) -> Callable[[], tuple[dict, list[str]]]:
    def check() -> tuple[dict, list[str]]:
        records = {p.name: read_json(p) for p in sorted((results / "measured").glob(f"row*-{device}.json"))}
        problems = [] if records else [f"no measured/row*-{device}.json written"]
        facts = {}
        for name, record in records.items():
            facts[name] = {k: record.get(k) for k in ("peak_memory_mb", "memory_method", "gflops", "hardware",
                                                      "gpu", "gpu_driver", "cuda", "cudnn", "seconds")}
            if device == "cuda":
                missing = [k for k in ("gpu", "gpu_driver", "cuda", "cudnn") if not record.get(k)]
                method = record.get("memory_method")
                if missing or method != "torch.cuda.max_memory_allocated":
                    problems.append(f"{name}: provenance lacks {missing} or memory_method is {method}")
        return facts, problems

    return check


def check_training(out: Path, backend: str | None = None, loss_must_fall: bool = True
                   ) -> Callable[[], tuple[dict, list[str]]]:
    """The run completed, every epoch's train loss is finite, the last epoch's is below the first's; with
    ``backend``, config.json names that process-group backend."""

    def check() -> tuple[dict, list[str]]:
        summary, config = read_json(out / "summary.json"), read_json(out / "config.json")
        losses = [epoch.get("train_loss") for epoch in summary["history"]]
        history = summary["history"]
        facts = {"status": summary["status"], "epochs": summary["epochs_completed"], "train_loss": losses,
                 "val_top1": [epoch.get("val_top1") for epoch in history],
                 "seconds_per_epoch": [epoch.get("time_s") for epoch in history],
                 "amp": config["config"]["recipe"].get("amp"), "steps_per_epoch": config.get("steps_per_epoch"),
                 "world_size": config.get("world_size"), "distributed_backend": config.get("distributed_backend")}
        problems = []
        if summary["status"] != "completed":
            problems.append(f"status {summary['status']}")
        if not losses or not all(isinstance(x, float) and math.isfinite(x) for x in losses):
            problems.append(f"train loss not finite: {losses}")
        elif loss_must_fall and len(losses) > 1 and not losses[-1] < losses[0]:
            problems.append(f"train loss did not decrease: {losses}")
        if backend is not None and config.get("distributed_backend") != backend:
            problems.append(f"process group backend {config.get('distributed_backend')!r}, expected {backend!r}")
        return facts, problems

    return check


def check_eval(store: Path, row: str) -> Callable[[], tuple[dict, list[str]]]:
    def check() -> tuple[dict, list[str]]:
        runs = sorted((store / "runs").glob(f"{int(row)}-*.json"))
        if not runs:
            return {}, ["no run stored"]
        record = read_json(runs[-1])
        return {k: record.get(k) for k in ("top1", "videos_evaluated", "device", "peak_memory_mb", "memory_method",
                                           "mode", "method", "gflops", "gpu")}, []

    return check


def check_speed(results: Path, before: set[Path], amp: bool) -> Callable[[], tuple[dict, list[str]]]:
    def check() -> tuple[dict, list[str]]:
        new = sorted(set((results / "runs" / "speed").glob("speed-*.json")) - before)
        if not new:
            return {}, ["no speed run stored"]
        run = read_json(new[-1])
        rows = {str(r["row"]): {"clip_ms": round(r["latency_per_clip_ms"]["median"], 3),
                                "n": r["latency_per_clip_ms"]["n"],
                                **({"frame_ms": round(r["latency_per_frame_ms"]["median"], 3)}
                                   if "latency_per_frame_ms" in r else {})} for r in run["rows"]}
        problems = [] if run["config"]["amp"] == amp else [f"stored amp {run['config']['amp']}, asked {amp}"]
        return {"file": new[-1].name, "rows": rows, "software": run.get("software")}, problems

    return check


# --------------------------------------------------------------------------- the plan


def cli(*args: str) -> list[str]:
    return [sys.executable, *CLI, *args]


def table1_lane(profile: Profile, results: Path) -> list[Step]:
    rows = ("--rows", profile.table1_rows) if profile.table1_rows else ()
    # --refresh: a record of this device copied with the store is measured again here
    return [Step("table1", cli("table1", "--device", profile.device, "--refresh", *rows, "--results", str(results)),
                 timeout_s=330, checks=check_table1(results, profile.device))]


def family_lane(profile: Profile, data: Path, train: Path, scratch: Path, index: Path) -> list[Step]:
    """Each row family trained for a few epochs with AMP, then evaluated."""
    common = ("--data", str(data), "--results", str(scratch), *profile.train_args())
    steps = []
    for name, (row, *extra) in TRAINED_ROWS.items():
        out = train / name
        steps.append(Step(f"train_{name}", cli("train", "--row", row, *extra, "--out", str(out), "--epochs",
                                               str(profile.epochs), *common), 120, LANE_THREADS,
                          check_training(out)))
        steps.append(Step(f"eval_{name}", cli("eval", "--row", row, "--checkpoint", str(out / "last.pt"), "--data",
                                              str(data), "--split", "test", "--device", profile.device,
                                              "--num-workers", str(profile.num_workers), "--index-cache", str(index),
                                              "--results", str(scratch)), 60, LANE_THREADS, check_eval(scratch, row)))
    return steps


def methods_lane(profile: Profile, data: Path, train: Path, scratch: Path) -> list[Step]:
    """One epoch of X3D-XS with multigrid, A3D and VA-RED2, then DDP on one process under torchrun."""
    common = ("--data", str(data), "--results", str(scratch), *profile.train_args())
    one_epoch = ("--epochs", "1", "--res", "32")  # after profile.train_args: the later --res wins
    steps = []
    for name, extra in (("multigrid", ("--schedule", "multigrid", "--batch-size", "2", "--no-val")),
                        ("a3d", ("--method", "a3d", "--no-val")),
                        ("vared2", ("--method", "vared2"))):
        out = train / f"row05_{name}"
        steps.append(Step(f"train_row05_{name}", cli("train", "--row", "5", "--out", str(out), *common, *one_epoch,
                                                     *extra), 120, LANE_THREADS,
                          check_training(out, loss_must_fall=False)))
    out = train / "row05_ddp_world1"
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", *CLI, "train",
           "--row", "5", "--out", str(out), *common, "--epochs", "1", "--no-val"]
    expected = "nccl" if profile.device == "cuda" else "gloo"
    steps.append(Step("train_row05_ddp_torchrun_world1", ddp, 120, LANE_THREADS,
                      check_training(out, backend=expected, loss_must_fall=False)))
    return steps


def speed_steps(profile: Profile, results: Path) -> list[Step]:
    rows = ("--rows", profile.speed_rows) if profile.speed_rows else ()
    before = set((results / "runs" / "speed").glob("speed-*.json"))
    return [Step(f"speed_{label}", cli("speed", "--device", profile.device, *rows, *profile.speed_args, *amp,
                                       "--results", str(results)), 170, checks=check_speed(results, before, bool(amp)))
            for label, amp in (("fp32", ()), ("amp_bf16", ("--amp",)))]


# --------------------------------------------------------------------------- packing


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def list_new_results(results: Path) -> list[str]:
    """Files of the run's store that the checkout's ``results/`` lacks or holds with other content."""
    original = REPO / "results"
    changed = []
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        relative = path.relative_to(results)
        before = original / relative
        if not before.is_file() or file_digest(before) != file_digest(path):
            changed.append(relative.as_posix())
    return changed


def pack(work: Path, out: Path) -> Path:
    """``work/{results,train,logs}`` as ``out/gpu_check.tar.gz``, without checkpoints."""
    tar_path = out / "gpu_check.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for part in ("results", "train", "logs"):
            if (work / part).exists():
                tar.add(work / part, arcname=part, filter=lambda info: None if info.name.endswith(".pt") else info)
    return tar_path


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=sorted(PROFILES), default="cuda",
                        help="cuda: the real check; cpu: the same steps with few rows and tiny sizes (dry run)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")),
                        help="where the log and the tar go (default: $OUT)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu_check"), help="scratch folder (emptied first)")
    parser.add_argument("--data", type=Path, default=REPO / ".whl" / "gpu_data" / "planes",
                        help="the generated videos (made with `airplanes` when missing; carried with the wheels)")
    parser.add_argument("--budget-s", type=float, help="stop starting steps after this long (default: the profile's)")
    parser.add_argument("--skip", default="", help="comma-separated step names not to run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES[args.device]
    budget = args.budget_s or profile.budget_s
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    results, train, logs = work / "results", work / "train", work / "logs"
    scratch, index = train / "eval_store", work / "index"
    for folder in (train, logs, index):
        folder.mkdir(parents=True)
    shutil.copytree(REPO / "results", results)  # so Table 1 shows the CPU records next to the CUDA ones
    log = Log(out, time.monotonic(), {"device": args.device, "date": dt.datetime.now(dt.timezone.utc).isoformat(),
                                      "work": str(work), "budget_s": budget, "argv": sys.argv,
                                      "commit": os.environ.get("GRW_BENCH_COMMIT")})
    skip = set(filter(None, args.skip.split(",")))
    try:
        in_process("environment", log, lambda: environment(args.device))
        if not (args.data / "dataset.json").is_file():
            run_step(Step("data", cli("airplanes", "--out", str(args.data), *DATA_ARGS, "--results", str(scratch)),
                          240), log, logs, budget)
        lanes = [table1_lane(profile, results), family_lane(profile, args.data, train, scratch, index),
                 methods_lane(profile, args.data, train, scratch)]
        lane_deadline = budget - profile.speed_reserve_s
        with concurrent.futures.ThreadPoolExecutor(len(lanes)) as pool:
            for future in [pool.submit(run_lane, lane, log, logs, lane_deadline, skip, profile.timeout_factor)
                           for lane in lanes]:
                future.result()
        run_lane(speed_steps(profile, results), log, logs, budget + 30, skip, profile.timeout_factor)
        run_step(Step("figures", cli("figures", "--results", str(results)), 120), log, logs, budget + 60)
    finally:
        in_process("new_results", log, lambda: write_new_results(results))
        log.say(f"packed {pack(work, out)}")
        log.write()
    bad = [r.name for r in log.results if r.status not in ("ok",)]
    log.say(f"done: {len(log.results) - len(bad)} of {len(log.results)} steps ok" +
            (f"; not ok: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


def run_lane(steps: list[Step], log: Log, logs: Path, deadline: float, skip: set[str], factor: float = 1.0) -> None:
    for step in steps:
        if step.name in skip:
            log.say(f"{step.name}: skipped (--skip)")
            continue
        try:
            run_step(step, log, logs, deadline, factor)
        except Exception as error:  # the runner itself failed (e.g. the command does not exist): log, go on
            log.add(StepResult(step.name, " ".join(step.argv), "error", None, 0.0, "",
                               problems=[f"{type(error).__name__}: {error}"]))


def write_new_results(results: Path) -> dict:
    new = list_new_results(results)
    (results / "new_results.txt").write_text("\n".join(new) + "\n")
    return {"new_or_changed": new}


if __name__ == "__main__":
    sys.exit(main())
