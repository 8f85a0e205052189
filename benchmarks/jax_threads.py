"""Does JAX on CPU keep to one thread when told to? The overfit model, 4 epochs, CPU time ÷ wall.

    .venv/bin/python benchmarks/jax_threads.py

Runs the measurement twice, each in a fresh process (JAX reads XLA_FLAGS once, when it starts): with the
flags that jax-ml/jax#1539 suggests for one thread, and without. A ratio near 1 means one core was used.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def measure() -> str:
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from benchmarks.levers import find_job
    from jobs.models import build_model

    job = find_job("overfitting", "overfit")
    rng = np.random.default_rng(0)
    x = (rng.random((25_000, 100)) < 0.3).astype("float32")
    y = rng.integers(0, 2, (25_000, 1)).astype("float32")
    model = build_model(job.dataset, job.layers, job.training, steps_per_execution=25)
    model.fit(x, y, batch_size=1000, epochs=1, verbose=0)  # compile
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=1000, epochs=4, verbose=0)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return f"{wall / 4:.3f} s/epoch, CPU time / wall {cpu / wall:.2f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        print(measure())
        return 0
    for label, flags in (("XLA_FLAGS one thread", ONE_THREAD), ("no flags", "")):
        env = {**os.environ, "XLA_FLAGS": flags}
        out = subprocess.run([sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True)
        print(f"{label}: {out.stdout.strip() or out.stderr.strip()[-300:]}  ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
