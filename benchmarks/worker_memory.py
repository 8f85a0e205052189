"""What a worker process keeps after a job: its resident memory across jobs it runs in turn.

    .venv/bin/python benchmarks/worker_memory.py [--data-dir DIR] [--examples N] [--jobs 3] [--max-epochs 1]
                                                 [--arenas 1] [--backend tensorflow]

Trains fashion/develop in this one process, as a reused Ray worker would, ``--jobs`` times (each into a
fresh store, so none resumes), on real Fashion-MNIST from ``--data-dir`` or on SYNTHETIC images with
``--examples`` training examples, on Keras' ``--backend``. Prints the process's resident memory after the
backend's import, after the data is read, after each epoch of the first job and after each job (with its
seconds per epoch); then, on TensorFlow, the large arrays Python can still reach after the first job (the
dataset's own among them) and the functions TensorFlow's eager context still holds. The process runs with
glibc's ``MALLOC_ARENA_MAX`` at ``--arenas``, as Ray's workers for the backend do
(``jobs.execution.process_env``); ``--arenas 0``: glibc's default, 8 heaps per core.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resident_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def large_arrays(min_bytes: float = 4e6) -> list[str]:
    """Every numpy array and TensorFlow tensor or variable Python can still reach, of at least ``min_bytes``."""
    import numpy as np
    import tensorflow as tf

    found, seen = [], set()
    # arrays are not tracked by the garbage collector themselves: look at what tracked objects refer to
    for holder in gc.get_objects():
        for value in gc.get_referents(holder):
            if id(value) in seen:
                continue
            seen.add(id(value))
            if isinstance(value, np.ndarray) and value.nbytes >= min_bytes:
                found.append(f"numpy {value.shape} {value.dtype}")
            elif isinstance(value, (tf.Tensor, tf.Variable)) and (value.shape.num_elements() or 0) * 4 >= min_bytes:
                found.append(f"tensorflow {tuple(value.shape)} {value.dtype.name}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="a folder with fashion-mnist/ (else SYNTHETIC images)")
    parser.add_argument("--examples", type=int, default=60_000, help="SYNTHETIC training examples")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=1)
    parser.add_argument("--backend", choices=["tensorflow", "jax"], default="tensorflow")
    parser.add_argument("--arenas", type=int, help="glibc's MALLOC_ARENA_MAX (default: as Ray's workers); 0: glibc's")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from jobs.execution import process_env
    from jobs.loading import load_experiments
    from jobs.plan import expand

    (item,), _ = load_experiments([ROOT / "specs" / "fashion.yaml"])
    (job,) = expand([item.experiment], synthetic=args.data_dir is None, max_epochs=args.max_epochs)
    job = replace(job, backend=args.backend)
    arenas = process_env(job).get("MALLOC_ARENA_MAX", "0") if args.arenas is None else str(args.arenas)
    if os.environ.get("MALLOC_ARENA_MAX", "0") != arenas:  # glibc reads it only as a process starts
        environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
        environment |= {"MALLOC_ARENA_MAX": arenas} if arenas != "0" else {}
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from jobs.data import synthetic
    from jobs.run import locate_datasets, read_datasets
    from jobs.worker import configure_backend, train

    print(f"{'started':<36} {resident_mib():7.0f} MiB")
    configure_backend(args.backend, 1, 0, None)  # one thread, as a 1-CPU job runs (JAX takes every core)
    print(f"{args.backend + ' imported':<36} {resident_mib():7.0f} MiB")
    if args.data_dir is None:
        data = synthetic(job.dataset, train=args.examples, test=args.examples // 6)
    else:
        data = next(iter(read_datasets(locate_datasets([job], args.data_dir)).values()))
    print(f"{'data read: ' + data.source[:25]:<36} {resident_mib():7.0f} MiB")
    print(f"glibc heaps at most: {arenas if arenas != '0' else '8 per core (its default)'}")

    def after_epoch(job_id, epoch, epochs, logs):
        print(f"{f'  after epoch {epoch}':<36} {resident_mib():7.0f} MiB")

    with tempfile.TemporaryDirectory(prefix="regimen-worker-memory-") as stores:
        for n in range(1, args.jobs + 1):
            result = train(job, data, f"{stores}/{n}", after_epoch if n == 1 else None)["result"]
            gc.collect()
            per_epoch = result["timings"]["seconds_per_epoch"]
            print(f"{f'after job {n}':<36} {resident_mib():7.0f} MiB   ({per_epoch:.2f} s per epoch)")
            if n == 1 and args.backend == "tensorflow":
                from tensorflow.python.eager import context

                print(f"  large arrays Python reaches: {large_arrays() or 'none'}")
                print(f"  functions in the eager context: {len(context.context().list_function_names())}")


if __name__ == "__main__":
    main()
