"""Each performance lever of ``jobs/execution.py``, measured on and off (the numbers in BENCHMARKS.md).

    .venv/bin/python benchmarks/levers.py --data-dir DIR jobs [--variants ...]   per-job levers, ~6 min
    .venv/bin/python benchmarks/levers.py --data-dir DIR suite [--max-epochs N]   process levers
    .venv/bin/python benchmarks/levers.py --data-dir DIR pairs                    two jobs at once, ~12 min

``jobs``: four jobs of the suite (the 706k-parameter overfit model, the 382k batchnorm one, fashion's
284k one, a 30k IMDB one), each trained for a few epochs in a fresh process on one thread, as the suite
runs them: as the product trains them, then with ``steps`` off, and with each candidate the product
measured and did not keep — XLA (``jit_compile=True``), the whole test set as one validation batch, a
``tf.data`` pipeline with prefetch instead of Keras' own adapter for numpy arrays — and in mixed
precision (``mixed_bfloat16``, the user's choice, not a lever); last, without validation, as the bound on
what validating each epoch's weights on another core could take off a job's time. Seconds per epoch are the median after
the first epoch (which compiles).

``suite``: ``regimen run`` of the whole suite on a fresh store, with every lever on, then with
``--off reuse``, ``--off shared-data``, ``--off order``, with ``--num-cpus 2`` (one job at a time
on both cores instead of two jobs side by side), on Keras' JAX backend, and in mixed precision. Wall
time, peak memory of the process tree, and every job's test metrics. ``--variants`` picks some of them;
by default, mixed precision only where the CPU multiplies bfloat16 natively (as ``make bench``).

``pairs``: the suite's critical path, the overfit job, timed alone and beside another job (fashion's,
which the suite runs beside it first), each on one thread as the suite runs them; then each pinned to
a core of its own (a candidate not kept), and the overfit job on two threads beside the other
(oversubscribed: three threads on two cores). Seconds per epoch of both jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import stamped, this_machine  # noqa: E402
from jobs.cpus import native_bfloat16  # noqa: E402
from jobs.spec import FULL_PRECISION  # noqa: E402

JOBS = {
    "overfit": ("overfitting", "overfit"),
    "batchnorm-bn": ("batchnorm", "bn"),
    "fashion-develop": ("fashion", "develop"),
    "l1-basic": ("l1", "basic"),
}
#: label -> (levers off, candidate not kept that is switched on)
JOB_VARIANTS = {
    "product": ([], None),
    "steps off": (["steps"], None),
    "+ xla": ([], "xla"),
    "+ val batch = test set": ([], "val-batch"),
    "+ tf.data feed": ([], "tf.data"),
    "mixed_bfloat16": ([], "mixed_bfloat16"),
    # not a lever: the epoch without its validation pass, the most that validating on another core could save
    "- validation": ([], "no-validation"),
}
SUITE_VARIANTS = {
    "all on": [],
    "reuse off": ["--off", "reuse"],
    "shared-data off": ["--off", "shared-data"],
    "order off": ["--off", "order"],
    "one job at a time, 2 threads": ["--num-cpus", "2"],
    # not a lever: the other backend, which has no thread setting on CPU, so one job at a time
    "jax backend (one job at a time)": ["--backend", "jax", "--num-cpus", "2"],
    "mixed_bfloat16": ["--precision", "mixed_bfloat16"],
}


def find_job(experiment: str, variant: str):
    from jobs.loading import load_experiments
    from jobs.plan import expand

    loaded, _ = load_experiments([ROOT / "specs" / f"{experiment}.yaml"])
    return next(job for job in expand([loaded[0].experiment]) if job.uses[0].variant == variant)


def time_one(
    name: str,
    off: list[str],
    candidate: str,
    data_dir: Path,
    epochs: int,
    threads: int | None = None,
    stream: bool = False,
) -> dict:
    """In this process: one job's seconds per epoch with the levers in ``off`` left off and ``candidate``
    (xla, val-batch, tf.data, mixed_bfloat16, no-validation or none) on; on ``threads`` instead of the job's own. With
    ``stream``, each epoch's seconds are also printed as it ends (for a run that is stopped, not finished)."""
    from jobs.data import locate, read_dataset
    from jobs.execution import execution_for
    from jobs.worker import configure_tensorflow

    job = find_job(*JOBS[name])
    data = read_dataset(job.dataset, locate(job.dataset.name, data_dir, download=False))
    execution = execution_for(job, len(data.x_train), frozenset(off))
    configure_tensorflow(threads or execution.threads, 0, None)
    import keras
    import tensorflow as tf

    from jobs.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(
        job.dataset,
        job.layers,
        job.training,
        steps_per_execution=execution.steps_per_execution,
        jit_compile=candidate == "xla" or "auto",
        precision="mixed_bfloat16" if candidate == "mixed_bfloat16" else FULL_PRECISION,
    )
    ends: list[float] = []

    def epoch_end(epoch, logs):
        ends.append(time.perf_counter())
        if stream:
            seconds = ends[-1] - (ends[-2] if len(ends) > 1 else started)
            print(json.dumps({"epoch": epoch + 1, "seconds": seconds}), flush=True)

    clock = keras.callbacks.LambdaCallback(on_epoch_end=epoch_end)
    batch = job.training.batch_size
    validation_batch = len(data.x_test) if candidate == "val-batch" else batch
    if candidate == "tf.data":
        train = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        train = train.shuffle(len(data.x_train)).batch(batch).prefetch(tf.data.AUTOTUNE)
        test = tf.data.Dataset.from_tensor_slices((data.x_test, data.y_test))
        validation = test.batch(validation_batch).prefetch(tf.data.AUTOTUNE)
        fit = {"x": train, "validation_data": validation}
    else:
        fit = {"x": data.x_train, "y": data.y_train, "batch_size": batch}
        if candidate != "no-validation":
            fit |= {"validation_data": (data.x_test, data.y_test), "validation_batch_size": validation_batch}
    started = time.perf_counter()
    model.fit(**fit, epochs=epochs, callbacks=[clock], verbose=0)
    per_epoch = [b - a for a, b in zip([started, *ends], ends, strict=False)]
    return {"first_epoch_s": per_epoch[0], "epoch_s": statistics.median(per_epoch[1:]), **execution.describe()}


def jobs_table(data_dir: Path, epochs: int, variants: list[str]) -> list[dict]:
    rows = []
    for name in JOBS:
        for label in variants:
            off, candidate = JOB_VARIANTS[label]
            command = [sys.executable, __file__, "--data-dir", str(data_dir), "one", name, ",".join(off)]
            command.append(candidate or "none")
            done = subprocess.run([*command, str(epochs)], capture_output=True, text=True, check=True)
            row = {"job": name, "variant": label, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(f"{name:<16} {label:<24} {row['epoch_s']:7.3f} s/epoch (first {row['first_epoch_s']:.2f} s)")
    return rows


class Arrangement(NamedTuple):
    threads: int  # the overfit job's TensorFlow threads
    pinned: bool  # each job's process pinned to a core of its own
    companion: bool  # fashion's job trains beside the overfit one


ARRANGEMENTS = {
    "overfit alone": Arrangement(threads=1, pinned=False, companion=False),
    "beside fashion's job": Arrangement(threads=1, pinned=False, companion=True),
    "beside it, each pinned to a core": Arrangement(threads=1, pinned=True, companion=True),
    "on 2 threads, beside it": Arrangement(threads=2, pinned=False, companion=True),
}


def start_timed(data_dir: Path, name: str, epochs: int, threads: int, core: int | None, log) -> subprocess.Popen:
    """``time_one`` of job ``name`` in a process of its own, pinned to ``core`` unless None; it streams
    each epoch's seconds to its stdout, and its stderr (TensorFlow's chatter) goes to ``log``."""
    command = [sys.executable, __file__, "--data-dir", str(data_dir), "one", name, "", "none", str(epochs)]
    command += ["--threads", str(threads), "--stream"]
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=pin)


def epoch_seconds(output: str) -> list[float]:
    """The streamed seconds of every epoch after the first (which compiles)."""
    lines = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    return [line["seconds"] for line in lines if "seconds" in line][1:]


def time_arrangement(data_dir: Path, epochs: int, arrangement: Arrangement, cores) -> tuple[list, list]:
    """One run of ``arrangement``: the overfit job's seconds per epoch, and its companion's (none without
    one). The companion, fashion's job, starts with the overfit job and is stopped when the overfit job
    ends, so that the two overlap throughout."""
    first_core, second_core = cores if arrangement.pinned else (None, None)
    with tempfile.TemporaryFile("w+") as log:
        processes = []
        try:
            overfit = start_timed(data_dir, "overfit", epochs, arrangement.threads, first_core, log)
            processes.append(overfit)
            if arrangement.companion:  # more epochs than it will have time for: stopped below
                processes.append(start_timed(data_dir, "fashion-develop", 10_000, 1, second_core, log))
            overfit_out, _ = overfit.communicate()
            if overfit.returncode:
                log.seek(0)
                raise SystemExit(f"the overfit job failed (exit {overfit.returncode}):\n{log.read()[-3000:]}")
        finally:  # the companion, and the overfit job too if this was interrupted
            for process in processes:
                if process.poll() is None:
                    process.terminate()
    companion_out = processes[1].communicate()[0] if arrangement.companion else ""
    return epoch_seconds(overfit_out), epoch_seconds(companion_out)


def pairs_table(data_dir: Path, epochs: int, rounds: int) -> list[dict]:
    """The overfit job's seconds per epoch in each of ``ARRANGEMENTS``, ``rounds`` times in turn (this
    machine's speed drifts)."""
    cores = sorted(os.sched_getaffinity(0))[:2]
    rows = []
    for turn in range(1, rounds + 1):
        for label, arrangement in ARRANGEMENTS.items():
            overfit, companion = time_arrangement(data_dir, epochs, arrangement, cores)
            row = {"round": turn, "arrangement": label, "epochs": epochs, **arrangement._asdict()}
            row["overfit_epoch_s"] = statistics.median(overfit)
            row["companion_epoch_s"] = statistics.median(companion) if companion else None
            rows.append(row)
            shown = f"; fashion's job {row['companion_epoch_s']:.3f} s/epoch" if companion else ""
            print(f"round {turn}: {label:<34} overfit {row['overfit_epoch_s']:.3f} s/epoch{shown}", flush=True)
    return rows


def suite_table(data_dir: Path, max_epochs: int | None, variants: list[str]) -> list[dict]:
    from benchmarks.processes import measure
    from jobs.store import Store

    rows = []
    for label in variants:
        extra = SUITE_VARIANTS[label]
        scratch = Path(tempfile.mkdtemp(prefix="regimen-levers-"))
        run = [sys.executable, "-m", "jobs", "run", "specs", "--data-dir", str(data_dir), "--no-report"]
        run += ["--results", str(scratch / "results"), *extra]
        run += ["--max-epochs", str(max_epochs)] if max_epochs else []
        measured = measure(run, scratch / "run.log", ROOT)
        row = {"variant": label, "wall_s": round(measured.seconds, 1), "peak_gib": measured.peak_memory_bytes / 2**30}
        row["exit_code"] = measured.returncode
        store = Store(str(scratch / "results"))
        results = {job_id: store.job(job_id).result() for job_id in store.job_ids()}
        row["test"] = {
            f"{uses[0]['experiment']}/{uses[0]['variant']}": result["test"]
            for job_id, result in results.items()
            if result and (uses := store.job(job_id).spec()["uses"])
        }
        rows.append(row)
        print(f"{label:<30} {row['wall_s']:7.1f} s  peak {row['peak_gib']:.2f} GiB  exit {measured.returncode}")
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


def default_variants(variants: dict) -> str:
    """Every variant, less mixed precision on a CPU that would only emulate bfloat16."""
    emulated = native_bfloat16() is False
    return ",".join(label for label in variants if not (emulated and label == "mixed_bfloat16"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="mnist.npz, fashion-mnist/, imdb.npz")
    commands = parser.add_subparsers(dest="command", required=True)
    jobs = commands.add_parser("jobs")
    jobs.add_argument("--epochs", type=int, default=4)
    jobs.add_argument(
        "--variants", default=default_variants(JOB_VARIANTS), help="comma-separated, of: " + ", ".join(JOB_VARIANTS)
    )
    pairs = commands.add_parser("pairs")
    pairs.add_argument("--epochs", type=int, default=16, help="the overfit job's epochs (at least 2)")
    pairs.add_argument("--rounds", type=int, default=4)
    suite = commands.add_parser("suite")
    suite.add_argument("--max-epochs", type=int)
    suite.add_argument(
        "--variants", default=default_variants(SUITE_VARIANTS), help="comma-separated, of: " + ", ".join(SUITE_VARIANTS)
    )
    one = commands.add_parser("one")  # internal: one measurement in a fresh process
    one.add_argument("name", choices=JOBS)
    one.add_argument("off")
    one.add_argument("candidate", choices=["none", "xla", "val-batch", "tf.data", "mixed_bfloat16", "no-validation"])
    one.add_argument("epochs", type=int)
    one.add_argument("--threads", type=int)
    one.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    if args.command == "one":
        off = [name for name in args.off.split(",") if name]
        timed = time_one(args.name, off, args.candidate, args.data_dir, args.epochs, args.threads, args.stream)
        print(json.dumps(timed))
        return 0
    if args.command == "pairs" and args.epochs < 2:
        parser.error("pairs: --epochs must be at least 2 (the first compiles and is not counted)")
    if args.command == "jobs":
        rows = jobs_table(args.data_dir, args.epochs, args.variants.split(","))
    elif args.command == "pairs":
        rows = pairs_table(args.data_dir, args.epochs, args.rounds)
    else:
        rows = suite_table(args.data_dir, args.max_epochs, args.variants.split(","))
    out = stamped(ROOT / "bench" / "results", f"levers-{args.command}")
    out.parent.mkdir(parents=True, exist_ok=True)
    written = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": this_machine()}
    written |= {"command": [Path(sys.argv[0]).name, *sys.argv[1:]], "rows": rows}
    out.write_text(json.dumps(written, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
