"""The side-by-side bench compares like with like: the seed's own code, the same data on both sides."""

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT))
from benchmarks.processes import measure
from benchmarks.run_seed_script import VARIANTS
from benchmarks.suite import SCRIPT_EXPERIMENTS, compare, stored_results, suite_jobs, write_synthetic_imdb
from jobs.data import IMDB_SHUFFLE_SEED, preprocess_imdb, read_npz, synthetic
from jobs.spec import Imdb

SEED_DOCUMENT = ROOT.parent / "shared" / "seeds" / "000_f8becc91890b70b4.txt"


def test_the_synthetic_imdb_archive_reads_back_as_regimens_synthetic_imdb(tmp_path):
    write_synthetic_imdb(tmp_path / "imdb.npz")
    read = preprocess_imdb(read_npz(tmp_path / "imdb.npz"), 100, "bench")
    generated = synthetic(Imdb(name="imdb", num_words=100))
    rng = np.random.RandomState(IMDB_SHUFFLE_SEED)  # Keras' load_data shuffles train, then test
    for part in ("train", "test"):
        order = np.arange(25_000)
        rng.shuffle(order)
        np.testing.assert_array_equal(getattr(read, f"x_{part}"), getattr(generated, f"x_{part}")[order])
        np.testing.assert_array_equal(getattr(read, f"y_{part}"), getattr(generated, f"y_{part}")[order])


#: sha256 of each seed script's code as the seed document prints it, whitespace collapsed to single spaces;
#: pinned so that the check runs where the document is not beside the checkout (CI's fresh clone)
SEED_CODE_SHA256 = {
    "overfitting": "ce413152f850e34069b7ec08f676430a891c3926ce40a61a8e846a13c95e6ef4",
    "regularization": "b457ee463630a627e31be4ca6254e7b981a855a478e95a84ab8cd195d618a318",
    "dropout": "858778c719ef44f228cacce2cce605bf15ff4b64f2262a4541f2873c5cd1c56b",
    "batchnorm": "c442a516c250aad271e245ed1d53558f944d44625bc32cf015d6d0a95aed86f3",
    "fashion": "f246e62eac6cef7f776d5836a4c4be9518ff5b65c01dc0c34ccb3f718bf3f46c",
}


def sha256_of_code(code: str) -> str:
    return hashlib.sha256(" ".join(code.split()).encode()).hexdigest()


def test_the_baseline_scripts_are_the_seeds_code_but_for_the_marked_label_fix():
    assert set(SEED_CODE_SHA256) == set(VARIANTS) == set(SCRIPT_EXPERIMENTS)
    for script in VARIANTS:
        lines = (ROOT / "benchmarks" / "seed" / f"{script}.py").read_text().splitlines()
        marked = [i for i, line in enumerate(lines) if "REGIMEN BENCH" in line]
        assert len(marked) == (1 if script in ("overfitting", "regularization", "dropout") else 0)
        unchanged = [line for i, line in enumerate(lines) if not any(i in (m, m + 1) for m in marked)]
        assert sha256_of_code("\n".join(unchanged)) == SEED_CODE_SHA256[script], script


@pytest.mark.skipif(not SEED_DOCUMENT.is_file(), reason="the seed document is not beside this checkout")
def test_the_pinned_code_is_the_seed_documents():
    blocks = re.findall(r"```\n(.*?)```", SEED_DOCUMENT.read_text(), flags=re.S)
    assert {sha256_of_code(block) for block in blocks if "def main" in block} == set(SEED_CODE_SHA256.values())


def test_metrics_outside_the_tolerance_are_flagged():
    baseline = {"dropout": {"basic": {"accuracy": 0.80, "loss": 0.50}}}
    rows = compare(baseline, {"dropout": {"basic": {"accuracy": 0.77, "loss": 0.55}}})
    assert {row["metric"]: row["within"] for row in rows} == {"accuracy": False, "loss": True}


def test_the_job_timeline_shows_each_jobs_span_and_process_from_the_suites_first_start(tmp_path):
    from jobs.loading import load_experiments
    from jobs.plan import expand
    from jobs.store import Store

    loaded, _ = load_experiments([ROOT / "specs" / "dropout.yaml"])
    experiments = [loaded[0].experiment]
    basic, dropout = expand(experiments)
    store = Store(str(tmp_path))
    for job, finished, total_s, pid in ((basic, "12:00:40", 30.0, 7), (dropout, "12:00:25", 20.0, 8)):
        timings = {"finished": f"2026-11-28T{finished}+00:00", "total_s": total_s, "seconds_per_epoch": total_s / 20}
        result = {"timings": timings, "environment": {"pid": pid}, "epochs_run": 20}
        store.job(job.id).finish({}, result, "")
    rows = suite_jobs(stored_results(experiments, tmp_path))
    assert [(row["job"], row["start"], row["end"], row["pid"]) for row in rows] == [
        (dropout.label, 0.0, 20.0, 8),
        (basic.label, 5.0, 35.0, 7),
    ]


def test_the_peak_memory_names_the_processes_that_made_it_up(tmp_path):
    parent = (
        "import subprocess, sys; held = b'1' * (200 * 2**20); "  # written, so resident (calloc's pages are not)
        "subprocess.run([sys.executable, '-c', 'import time; held = b\\'1\\' * (100 * 2**20); time.sleep(2)'])"
    )
    measured = measure([sys.executable, "-c", parent], tmp_path / "log", tmp_path, interval=0.1)
    assert measured.returncode == 0
    (first, first_size), (second, second_size) = measured.at_peak
    assert first == second == Path(sys.executable).name
    assert first_size >= 200 * 2**20 and 100 * 2**20 <= second_size < 200 * 2**20  # the parent, then its child
    assert measured.peak_memory_bytes == first_size + second_size
