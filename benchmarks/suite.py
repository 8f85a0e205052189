"""The built-in suite, side by side: the seed's five scripts one after another vs ``regimen run``.

    .venv/bin/python benchmarks/suite.py [--data-dir DIR]                       (make bench)

Same machine, same run, same data, epochs and batch sizes on both sides. Real MNIST and Fashion-MNIST
(staged with ``../shared/data/stage-offline-data`` when no --data-dir is given); IMDB real where the data
folder has ``imdb.npz``, otherwise SYNTHETIC at its real full shape (25000 reviews for training and for
test), written as a canonical ``imdb.npz`` that both sides read. Regimen runs twice: as it runs by
default (float32, like the seed), and, where the CPU multiplies bfloat16 natively (AMX or AVX512-BF16),
with ``--precision mixed_bfloat16``. Prints, and writes as JSON under ``bench/results/``: each side's wall
time and its ratio to the baseline's; training FLOPs / wall / the measured matmul peak of the arithmetic
the side used; the peak memory of each side's whole process tree; a rerun of the finished suite; and
every variant's test metrics on each Regimen side against the baseline's, with the tolerance they must
agree within; and where each Regimen side's time went: every job's start, end, worker process and
seconds per epoch. Exit code 1 when the default (float32) side misses a target of issue 7.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import stamped, this_machine  # noqa: E402
from benchmarks.processes import Measured, measure  # noqa: E402
from benchmarks.run_seed_script import VARIANTS  # noqa: E402
from jobs.cpus import native_bfloat16  # noqa: E402
from jobs.data import IMDB_INDEX_FROM, IMDB_OOV_CHAR, synthetic  # noqa: E402
from jobs.execution import estimated_flops  # noqa: E402
from jobs.loading import load_experiments  # noqa: E402
from jobs.plan import expand  # noqa: E402
from jobs.spec import FULL_PRECISION, ROWS, Imdb  # noqa: E402
from jobs.store import Store  # noqa: E402

STAGE = ROOT.parent / "shared" / "data" / "stage-offline-data"
BENCH = ROOT / "bench"
SEED_SCRIPTS = ROOT / "benchmarks" / "seed"
#: which experiment's variants each seed script trains
SCRIPT_EXPERIMENTS = {
    "overfitting": ("overfitting",),
    "regularization": ("l1", "l2"),
    "dropout": ("dropout",),
    "batchnorm": ("batchnorm",),
    "fashion": ("fashion",),
}
#: Both sides train from the same seed, but in a different order of float operations (threads, XLA),
#: which long training amplifies: accuracies must agree within 0.02, losses within 25% of the baseline's.
ACCURACY_TOLERANCE, LOSS_TOLERANCE = 0.02, 0.25
#: issue 7's targets
TARGETS = {"wall_ratio": 0.40, "flop_share": 0.55, "peak_memory_gib": 2.7, "rerun_seconds": 5.0}
#: the matmul each precision's layers compute in
MATMUL_DTYPE = {FULL_PRECISION: "float32", "mixed_bfloat16": "bfloat16"}


def prepare_data(data_dir: Path | None) -> tuple[Path, bool]:
    """``bench/data/suite``: mnist.npz, fashion-mnist/ and imdb.npz for both sides (and for
    ``benchmarks/levers.py``); whether its IMDB is real."""
    if data_dir is None:
        data_dir = BENCH / "data" / "staged"
        if not (data_dir / "mnist.npz").is_file():
            if not STAGE.is_file():
                sys.exit(f"no --data-dir given and no {STAGE} to stage real MNIST and Fashion-MNIST with")
            subprocess.run([str(STAGE), str(data_dir)], check=True)
    into = BENCH / "data" / "suite"
    sources, outputs = {data_dir.absolute(), data_dir.resolve()}, {into.absolute(), into.resolve()}
    if any(output in (source, *source.parents) for source in sources for output in outputs):
        sys.exit(f"--data-dir {data_dir} is where this bench writes its data; pass the folder you staged (or none)")
    for name in ("mnist.npz", "fashion-mnist"):
        if not (data_dir / name).exists():
            sys.exit(f"{data_dir / name} is missing: stage it with {STAGE.name} DIR and pass --data-dir DIR")
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for name in ("mnist.npz", "fashion-mnist"):
        (into / name).symlink_to((data_dir / name).resolve())
    if (data_dir / "imdb.npz").is_file():
        (into / "imdb.npz").symlink_to((data_dir / "imdb.npz").resolve())
        return into, True
    write_synthetic_imdb(into / "imdb.npz")
    return into, False


def write_synthetic_imdb(path: Path) -> None:
    """Regimen's synthetic IMDB (25000 + 25000 reviews) as Keras' canonical archive of word-index lists."""
    import numpy as np

    arrays = synthetic(Imdb(name="imdb", num_words=100))

    def reviews(multi_hot):
        out = np.empty(len(multi_hot), dtype=object)
        for i, row in enumerate(multi_hot):
            words = np.flatnonzero(row[IMDB_INDEX_FROM:]).tolist()  # load_data adds IMDB_INDEX_FROM back
            out[i] = [*words, 10_000] if row[IMDB_OOV_CHAR] else words  # a rare word: becomes the OOV index
        return out

    labels = {part: getattr(arrays, f"y_{part}").ravel().astype(np.int64) for part in ("train", "test")}
    np.savez(
        path,
        x_train=reviews(arrays.x_train),
        y_train=labels["train"],
        x_test=reviews(arrays.x_test),
        y_test=labels["test"],
    )


def matmul_peak(dtype: str = "float32") -> float:
    """The best matmul rate TensorFlow reaches on this machine in ``dtype``, all cores, in FLOP/s."""
    probe = """
import sys, time, tensorflow as tf
best, dtype = 0.0, sys.argv[1]
for n in (1024, 2048, 4096):
    a, b = tf.random.normal((n, n), dtype=dtype), tf.random.normal((n, n), dtype=dtype) / n**0.5  # stay finite

    @tf.function
    def chain(a, b):
        for _ in range(8):
            a = tf.matmul(a, b)
        return tf.reduce_sum(a)

    chain(a, b).numpy()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 4:
        chain(a, b).numpy()
        calls += 1
    best = max(best, 8 * 2 * n**3 * calls / (time.perf_counter() - started))
print(best)
"""
    done = subprocess.run([sys.executable, "-c", probe, dtype], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def training_flops(experiments) -> float:
    """6 FLOPs per parameter per training example per epoch, over the suite's distinct models (the
    baseline trains the same ten: its regularization script trains the shared basic model once)."""
    return sum(estimated_flops(job, ROWS[job.dataset.name][0], validation_rows=0) for job in expand(experiments))


def run_baseline(data: Path, scratch: Path) -> tuple[Measured, dict, dict]:
    """The five scripts one after another, each its own process, as a user runs them; their test metrics
    and each script's seconds."""
    env = {**os.environ, "REGIMEN_BENCH_DATA": str(data), "REGIMEN_BENCH_OUT": str(scratch)}
    seconds, largest, metrics, returncode, scripts = 0.0, Measured(0, 0, 0), {}, 0, {}
    for script in VARIANTS:
        out = scratch / f"{script}.json"
        command = [sys.executable, str(ROOT / "benchmarks" / "run_seed_script.py"), str(SEED_SCRIPTS / f"{script}.py")]
        measured = measure([*command, str(out)], scratch / "baseline.log", ROOT, env)
        seconds = seconds + measured.seconds
        largest = max(largest, measured, key=lambda m: m.peak_memory_bytes)
        scripts[script] = round(measured.seconds, 1)
        returncode = returncode or measured.returncode
        if measured.returncode == 0:
            for experiment in SCRIPT_EXPERIMENTS[script]:
                metrics[experiment] = json.loads(out.read_text())
        print(f"  baseline {script}: {measured.seconds:.1f} s", flush=True)
    return Measured(seconds, largest.peak_memory_bytes, returncode, largest.at_peak), metrics, scripts


def stored_results(experiments, results: Path, precision: str = FULL_PRECISION) -> list[tuple]:
    """Each of a side's jobs with its stored result (None where it has none), read once."""
    store = Store(str(results))
    return [(job, store.job(job.id).result()) for job in expand(experiments, precision=precision)]


def suite_metrics(stored: list[tuple]) -> dict:
    metrics = {}
    for job, result in stored:
        result = result or {}
        for use in job.uses:
            metrics.setdefault(use.experiment, {})[use.variant] = result.get("test")
    return metrics


def suite_jobs(stored: list[tuple]) -> list[dict]:
    """Where a side's time went: each finished job's start and end (seconds after the first job started,
    to the second, as the store records when a job finished), worker process and seconds per epoch, in
    order of start. The job that ends last is the suite's critical path; a gap before the suite's end on
    another process is a core left idle."""
    rows = []
    for job, result in stored:
        if result is None:
            continue
        timings = result["timings"]
        end = datetime.fromisoformat(timings["finished"]).timestamp()
        rows.append(
            {
                "job": job.label,
                "start": end - timings["total_s"],
                "end": end,
                "pid": result["environment"]["pid"],
                "epochs": result["epochs_run"],
                "seconds_per_epoch": timings["seconds_per_epoch"],
            }
        )
    first = min((row["start"] for row in rows), default=0.0)
    for row in rows:
        row["start"], row["end"] = round(row["start"] - first), round(row["end"] - first)
    return sorted(rows, key=lambda row: row["start"])


def compare(baseline: dict, suite: dict) -> list[dict]:
    rows = []
    for experiment, variants in suite.items():
        for variant, ours in variants.items():
            theirs = baseline.get(experiment, {}).get(variant) or {}
            for metric, value in sorted((ours or {}).items()):
                if metric not in theirs:
                    continue
                accuracy = "accuracy" in metric
                allowed = ACCURACY_TOLERANCE if accuracy else LOSS_TOLERANCE * abs(theirs[metric])
                rows.append(
                    {
                        "experiment": experiment,
                        "variant": variant,
                        "metric": metric,
                        "baseline": theirs[metric],
                        "regimen": value,
                        "difference": value - theirs[metric],
                        "allowed": allowed,
                        "within": abs(value - theirs[metric]) <= allowed,
                    }
                )
    return rows


def run_regimen(data: Path, scratch: Path, precision: str) -> tuple[Measured, Path, list[str]]:
    """``regimen run specs`` on a fresh store, with the report, as a user runs it."""
    results = scratch / f"results-{precision}"
    command = [sys.executable, "-m", "jobs", "run", "specs", "--data-dir", str(data), "--results", str(results)]
    if precision != FULL_PRECISION:
        command += ["--precision", precision]
    measured = measure(command, scratch / f"suite-{precision}.log", ROOT)
    print(f"  regimen run ({precision}): {measured.seconds:.1f} s", flush=True)
    return measured, results, command


def side_checks(side: dict, rows: list[dict]) -> dict[str, bool]:
    """Issue 7's targets for one Regimen side."""
    return {
        f"wall <= {TARGETS['wall_ratio']:.2f} x baseline": side["wall_ratio"] <= TARGETS["wall_ratio"],
        f"FLOP-limit share >= {TARGETS['flop_share']:.2f}": side["flop_share"] >= TARGETS["flop_share"],
        f"peak memory <= {TARGETS['peak_memory_gib']:g} GiB": side["peak_memory_gib"] <= TARGETS["peak_memory_gib"],
        "every variant's metrics within tolerance": bool(rows) and all(row["within"] for row in rows),
        "finished": side["exit_code"] == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder with mnist.npz, fashion-mnist/ (and imdb.npz)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, stores, plots)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="regimen-bench-"))
    data, real_imdb = prepare_data(args.data_dir)
    loaded, errors = load_experiments([ROOT / "specs"])
    if errors:
        sys.exit(f"specs/ does not load: {errors[0]}")
    experiments = [spec.experiment for spec in loaded]
    flops = training_flops(experiments)
    print(f"IMDB: {'real' if real_imdb else 'SYNTHETIC, full shape'}; training FLOPs {flops:.3e}", flush=True)
    native = native_bfloat16()
    precisions = [FULL_PRECISION, "mixed_bfloat16"] if native else [FULL_PRECISION]
    peaks = {precision: matmul_peak(MATMUL_DTYPE[precision]) for precision in precisions}
    print("matmul peak: " + ", ".join(f"{MATMUL_DTYPE[p]} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items()), flush=True)

    baseline, baseline_metrics, scripts = run_baseline(data, scratch)
    sides = {"baseline": {**side_report(baseline, baseline, flops, peaks[FULL_PRECISION]), "scripts_s": scripts}}
    checks, commands = {}, {}
    for precision in precisions:
        measured, results, commands[precision] = run_regimen(data, scratch, precision)
        stored = stored_results(experiments, results, precision)
        rows = compare(baseline_metrics, suite_metrics(stored))
        side = side_report(measured, baseline, flops, peaks[precision])
        sides[f"regimen {precision}"] = {
            **side,
            "precision": precision,
            "metrics": rows,
            "jobs": suite_jobs(stored),
        }
        checks[f"regimen {precision}"] = side_checks(side, rows)
    rerun = measure(commands[FULL_PRECISION], scratch / "rerun.log", ROOT)  # the default run, on its store
    rerun_log = (scratch / "rerun.log").read_text()
    trained = re.search(r"(\d+) trained, ", rerun_log)
    trained_nothing = rerun.returncode == 0 and trained is not None and trained.group(1) == "0"
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": this_machine(),
        "imdb": "real" if real_imdb else "synthetic, 25000 x 100 train and test",
        "matmul_peak_flops": {MATMUL_DTYPE[p]: v for p, v in peaks.items()},
        "training_flops": flops,
        "sides": sides,
        "rerun": {
            "wall_s": round(rerun.seconds, 2),
            "trained_nothing": trained_nothing,
            "last_line": rerun_log.strip().splitlines()[-1],
        },
        "tolerance": {"accuracy_absolute": ACCURACY_TOLERANCE, "loss_relative": LOSS_TOLERANCE},
        "targets": TARGETS,
        "checks": {
            **checks,
            "baseline and rerun": {
                "baseline finished": baseline.returncode == 0,
                f"rerun <= {TARGETS['rerun_seconds']:g} s, trains nothing": rerun.seconds <= TARGETS["rerun_seconds"]
                and trained_nothing,
            },
        },
    }
    BENCH.joinpath("results").mkdir(parents=True, exist_ok=True)
    out = stamped(BENCH / "results", "suite")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, out)
    if args.keep:
        print(f"scratch kept: {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    # issue 7's targets are the product's as it runs by default; the mixed-precision side is the user's choice
    default_meets_every_target = all(checks[f"regimen {FULL_PRECISION}"].values())
    return 0 if default_meets_every_target and all(report["checks"]["baseline and rerun"].values()) else 1


def side_report(measured: Measured, baseline: Measured, flops: float, peak: float) -> dict:
    """One side's wall, its ratio to the baseline's, and its share of the FLOP limit of its arithmetic."""
    return {
        "wall_s": round(measured.seconds, 2),
        "wall_ratio": round(measured.seconds / baseline.seconds, 4),
        "flop_share": round(flops / measured.seconds / peak, 4),
        "peak_memory_gib": round(measured.peak_memory_bytes / 2**30, 3),
        # the processes that made up the peak, largest first (PSS in MiB)
        "at_peak_mib": [[name, round(size / 2**20)] for name, size in measured.at_peak],
        "exit_code": measured.returncode,
    }


def print_report(report: dict, out: Path) -> None:
    peaks = ", ".join(f"{dtype} {v / 1e9:.0f} GFLOP/s" for dtype, v in report["matmul_peak_flops"].items())
    print(f"\nmatmul peak {peaks}; training {report['training_flops']:.3e} FLOP")
    print(f"IMDB: {report['imdb']}")
    print(f"{'side':<24} {'wall s':>8} {'÷ baseline':>10} {'FLOP share':>11} {'peak GiB':>9}")
    for name, side in report["sides"].items():
        print(
            # the four decimals stored: printing three would round a rounded number
            f"{name:<24} {side['wall_s']:8.1f} {side['wall_ratio']:10.4f} {side['flop_share']:11.4f} "
            f"{side['peak_memory_gib']:9.2f}"
        )
    for name, side in report["sides"].items():
        largest = ", ".join(f"{process} {mib}" for process, mib in side["at_peak_mib"][:4])
        print(f"{name} at its peak, MiB: {largest}")
    print(f"rerun of the finished suite: {report['rerun']['wall_s']:.1f} s ({report['rerun']['last_line']})")
    for name, side in report["sides"].items():
        if "jobs" not in side:
            continue
        print(f"\n{name}: jobs\n{'job':<34} {'start s':>8} {'end s':>8} {'process':>8} {'epochs':>7} {'s/epoch':>8}")
        for job in side["jobs"]:
            print(
                f"{job['job']:<34} {job['start']:8d} {job['end']:8d} {job['pid']:8d} {job['epochs']:7d} "
                f"{job['seconds_per_epoch']:8.3f}"
            )
    for name, side in report["sides"].items():
        if "metrics" not in side:
            continue
        print(f"\n{name}\n{'experiment/variant':<26} {'metric':<34} {'baseline':>9} {'regimen':>9} {'allowed':>8}")
        for row in side["metrics"]:
            mark = "" if row["within"] else "  OUTSIDE"
            print(
                f"{row['experiment'] + '/' + row['variant']:<26} {row['metric']:<34} {row['baseline']:9.4f} "
                f"{row['regimen']:9.4f} {row['allowed']:8.4f}{mark}"
            )
    print()
    for name, checks in report["checks"].items():
        for label, ok in checks.items():
            print(f"{'met   ' if ok else 'MISSED'} {name}: {label}")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
