"""`make gpu-check`: every model of the catalog on CUDA and on CPU, cold start and steady state.

For each model and each execution provider (CUDA when usable, then CPU), in a fresh
process of its own so that each cold start is a real one:
- cold start: session creation with the handler's setup (`LoadedModel.load`), then the
  first run of the manifest's example input;
- steady state: the example at batch 1 again and again for `--seconds` (p50 and p99
  latency), then, for models that batch, batches of the manifest's max_batch for as long
  (inputs per second; for the others, inputs per second is the batch-1 rate).
Writes bench/results/gpu.json and gpu.md (`--out`). Without an NVIDIA driver it says CUDA
is absent and still measures CPU.

With `--install` and a driver present, it first makes CUDA usable in this environment:
`pip install onnxruntime-gpu[cuda,cudnn]` (the CUDA 13 and cuDNN 9 libraries that
onnxruntime-gpu loads from the nvidia-* wheels; the CPU `onnxruntime` package, which
would shadow it, is removed first), from PyPI or from `--wheels DIR` on a machine without
network. Sized for a 10-minute run on a 16-core H200 box: `--budget` seconds in all, the
install included (the models left when it runs out are listed as skipped), `--seconds`
per steady phase.

    python -m bench.gpu_check [--install] [--seconds 4] [--budget 540] [--only a,b]
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort

from executors.errors import PredictionFailed
from executors.runtime import LoadedModel
from inferhook.catalog import load_catalog
from inferhook.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MIN_RUNS = 3
MAX_RUNS = 500
STARTED_ENV = "INFERHOOK_GPU_CHECK_STARTED"
"""Unix time of the run's first start (set once; the restart after an install keeps it)."""
CHILD_SLACK = 120.0
"""Seconds a model's process may take beyond its two steady phases (load, first run)."""


@dataclass
class Row:
    """One model on one provider. Times in milliseconds; None where not measured."""

    model: str
    requested: str
    provider: str | None = None
    """The provider the main session runs on (CPU when CUDA was asked for but fell back)."""
    load_ms: float | None = None
    """Session creation and the handler's setup."""
    first_run_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    runs: int = 0
    batch: int = 1
    per_second: float | None = None
    """Inputs per second: at `batch` for models that batch, else at batch 1."""
    error: str | None = None

    @property
    def cold_start_ms(self) -> float | None:
        if self.load_ms is None or self.first_run_ms is None:
            return None
        return self.load_ms + self.first_run_ms


def driver_present() -> bool:
    """Whether an NVIDIA driver is installed (the CUDA provider needs one)."""
    return ctypes.util.find_library("cuda") is not None or Path("/proc/driver/nvidia").exists()


def cuda_status() -> tuple[bool, str]:
    """Whether sessions can be made on CUDA here, and why not when they cannot."""
    if not driver_present():
        return False, "CUDA absent: no NVIDIA driver on this machine"
    if CUDA not in ort.get_available_providers():
        return False, (f"CUDA absent: onnxruntime {ort.__version__} has no CUDA provider "
                       "(run with --install)")
    return True, f"CUDA provider of onnxruntime {ort.__version__}"


def install(wheels: Path | None) -> str:
    """Make onnxruntime-gpu and its CUDA libraries importable in this interpreter's
    environment; what was done, in words."""
    source = ["--no-index", "--find-links", str(wheels)] if wheels else []
    pip = [sys.executable, "-m", "pip", "install", "-q", *source]
    if CUDA in ort.get_available_providers():  # the GPU build: add its CUDA libraries
        command = [*pip, f"onnxruntime-gpu[cuda,cudnn]=={ort.__version__}"]
    else:  # the CPU package provides the same module: it goes first
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "onnxruntime"],
                       check=False)
        command = [*pip, "onnxruntime-gpu[cuda,cudnn]"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"install failed ({' '.join(command[3:])}): {done.stderr.strip()[-400:]}"
    return f"installed: {' '.join(command[3:])}"


def steady(call: Any, seconds: float) -> list[float]:
    """Seconds per call, calling for `seconds` (at least MIN_RUNS, at most MAX_RUNS times)."""
    took: list[float] = []
    until = time.perf_counter() + seconds
    while len(took) < MIN_RUNS or (time.perf_counter() < until and len(took) < MAX_RUNS):
        started = time.perf_counter()
        call()
        took.append(time.perf_counter() - started)
    return took


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation) of `samples`, in milliseconds."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return (ordered[low] + (ordered[high] - ordered[low]) * (rank - low)) * 1000


def measure(model_name: str, requested: str, seconds: float) -> Row:
    """One model on one provider, in this process (which should be fresh: see `run_one`)."""
    row = Row(model=model_name, requested=requested)
    entry = load_catalog(Settings().models_dir)[model_name]
    example = entry.manifest.example_input
    if example is None:
        row.error = "no example input"
        return row
    if requested == CUDA and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, when installed
    names = [CUDA, CPU] if requested == CUDA else [CPU]
    model = LoadedModel.load(entry, intra_op_threads=os.cpu_count() or 1, provider_names=names)
    row.provider, row.load_ms = model.provider, model.load_seconds * 1000

    def one(inputs: list[dict[str, Any]]) -> None:
        for outcome in model.run_batch(inputs):
            if isinstance(outcome, PredictionFailed):
                raise RuntimeError(f"{outcome.reason}: {outcome}")

    started = time.perf_counter()
    one([example])
    row.first_run_ms = (time.perf_counter() - started) * 1000
    single = steady(lambda: one([example]), seconds)
    row.p50_ms, row.p99_ms, row.runs = percentile(single, 50), percentile(single, 99), len(single)
    row.per_second = 1 / statistics.mean(single)
    if model.max_batch > 1:
        row.batch = model.max_batch
        batched = steady(lambda: one([example] * row.batch), seconds)
        row.per_second = row.batch / statistics.mean(batched)
    return row


def run_one(model_name: str, requested: str, seconds: float, tmp: Path) -> Row:
    """`measure` in a process of its own; a crash or a hang is that row's error."""
    out = tmp / f"{model_name.replace('/', '-')}-{requested}.json"
    command = [sys.executable, "-m", "bench.gpu_check", "--one", model_name, "--provider",
               requested, "--seconds", str(seconds), "--out", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=2 * seconds + CHILD_SLACK, check=False)
    except subprocess.TimeoutExpired:
        return Row(model=model_name, requested=requested,
                   error=f"no result within {2 * seconds + CHILD_SLACK:.0f} s")
    if done.returncode != 0 or not out.exists():
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return Row(model=model_name, requested=requested, error=tail[-300:])
    return Row(**json.loads(out.read_text()))


def machine(cuda: str) -> dict[str, Any]:
    """The facts a reader needs to compare runs."""
    gpu = None
    if shutil.which("nvidia-smi"):
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              check=False)
        gpu = done.stdout.strip() or None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "gpu": gpu, "onnxruntime": ort.__version__,
            "providers": ort.get_available_providers(), "python": platform.python_version(),
            "cuda": cuda}


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def markdown(document: dict[str, Any]) -> str:
    """gpu.md: the machine, each model on each provider, and CUDA against CPU."""
    facts = document["machine"]
    rows = [Row(**{k: v for k, v in row.items() if k != "cold_start_ms"})
            for row in document["models"]]
    lines = [f"# inferhook models on CUDA and CPU ({document['run']['finished_at']})", "",
             f"Machine: {facts['cores']} cores ({facts['cpu']}), GPU {facts['gpu'] or 'none'}, "
             f"onnxruntime {facts['onnxruntime']}, Python {facts['python']}.", "",
             f"CUDA: {facts['cuda']}.", "",
             f"Command: `{document['run']['command']}`, {document['run']['duration_s']:.0f} s; "
             f"steady phases of {document['run']['seconds']:g} s.", "",
             "| model | provider | cold start ms (load + first run) | p50 ms | p99 ms | runs "
             "| inputs/s (batch) | note |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cold = (f"{_ms(r.cold_start_ms)} ({_ms(r.load_ms)} + {_ms(r.first_run_ms)})"
                if r.cold_start_ms is not None else "—")
        rate = f"{_ms(r.per_second)} ({r.batch})" if r.per_second is not None else "—"
        provider = r.provider or r.requested
        note = r.error or ("fell back to CPU" if r.requested != provider else "")
        lines.append(f"| {r.model} | {provider.removesuffix('ExecutionProvider')} | {cold} "
                     f"| {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {r.runs} | {rate} | {note} |")
    ratios = speedups(rows)
    if ratios:
        lines += ["", "CUDA against CPU (CPU time / CUDA time; above 1: CUDA is faster):", "",
                  "| model | cold start | p50 | inputs/s |", "|---|---|---|---|"]
        lines += [f"| {model} | {_ms(r['cold_start'])} | {_ms(r['p50'])} | {_ms(r['per_second'])} |"
                  for model, r in ratios.items()]
    return "\n".join(lines) + "\n"


def speedups(rows: list[Row]) -> dict[str, dict[str, float | None]]:
    """Per model measured on both, CPU over CUDA: cold start, p50 latency, throughput."""
    def ratio(cpu: float | None, cuda: float | None) -> float | None:
        return cpu / cuda if cpu is not None and cuda else None

    on = {(r.model, r.provider): r for r in rows if r.error is None}
    found: dict[str, dict[str, float | None]] = {}
    for (model, provider), gpu in on.items():
        cpu = on.get((model, CPU))
        if provider != CUDA or cpu is None:
            continue
        found[model] = {"cold_start": ratio(cpu.cold_start_ms, gpu.cold_start_ms),
                        "p50": ratio(cpu.p50_ms, gpu.p50_ms),
                        "per_second": ratio(gpu.per_second, cpu.per_second)}
    return found


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true",
                        help="with a driver present: pip install onnxruntime-gpu[cuda,cudnn] first")
    parser.add_argument("--wheels", type=Path, help="with --install: a folder of wheels (no network)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each steady phase")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all models")
    parser.add_argument("--only", default="", help="comma-separated model names")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--installed", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--provider", default=CPU, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.one:  # the child process of run_one
        row = measure(args.one, args.provider, args.seconds)
        args.out.write_text(json.dumps(asdict(row)))
        return
    # The budget counts from the first start, install included (the restart keeps the variable).
    began = float(os.environ.setdefault(STARTED_ENV, str(time.time())))
    if args.install and driver_present():
        done = install(args.wheels)
        print(done, flush=True)
        # Start again: this process imported the onnxruntime that pip may have replaced.
        again = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--install"]
        os.execv(sys.executable, [sys.executable, "-m", "bench.gpu_check", *again,
                                  "--installed", done])
    usable, why = cuda_status()
    print(why, flush=True)
    catalog = load_catalog(Settings().models_dir)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or sorted(catalog)
    providers = [CUDA, CPU] if usable else [CPU]
    tmp = args.out / ".gpu-check"
    tmp.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for name in names:
        for provider in providers:
            if time.time() - began > args.budget:
                rows.append(Row(model=name, requested=provider, error="skipped: out of time"))
                continue
            row = run_one(name, provider, args.seconds, tmp)
            print(f"{name} on {row.provider or provider}: cold {_ms(row.cold_start_ms)} ms, "
                  f"p50 {_ms(row.p50_ms)} ms, {_ms(row.per_second)}/s"
                  + (f"; {row.error}" if row.error else ""), flush=True)
            rows.append(row)
    shutil.rmtree(tmp, ignore_errors=True)
    document = {
        "machine": machine(why),
        "run": {"command": "make gpu-check", "finished_at": datetime.now(UTC).isoformat(
                    timespec="seconds"), "duration_s": round(time.time() - began, 1),
                "seconds": args.seconds, "budget_s": args.budget, "install": args.installed},
        "models": [{**asdict(r), "cold_start_ms": r.cold_start_ms} for r in rows],
        "cuda_vs_cpu": speedups(rows),
    }
    (args.out / "gpu.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "gpu.md").write_text(markdown(document))
    print((args.out / "gpu.md").read_text())


if __name__ == "__main__":
    main()
