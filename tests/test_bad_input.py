"""Bad input anywhere gets one clear line and exit 2 (or a failed job), never a traceback, and never
costs a stored result."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import ROOT, regimen, smoke_run
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobs.cli import main
from jobs.loading import load_experiments, validate_document
from jobs.spec import Experiment

VALID = yaml.safe_load((ROOT / "specs" / "fashion.yaml").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def paths_of(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths_of(value, (*prefix, i))


ALL_PATHS = [p for p in paths_of(VALID) if p]


def replaced(document, path, value):
    copy = json.loads(json.dumps(document))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return copy


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), values), min_size=1, max_size=3))
@example([(("training",), {"\n": 0})])  # a key that is a newline: the error must stay one line
def test_validate_never_crashes_on_mutated_specs(mutations):
    document = VALID
    for path, value in mutations:
        try:
            document = replaced(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    experiment, errors = validate_document(Experiment, document, "spec.yaml")
    if not errors:  # a validated experiment or errors, never an exception
        assert isinstance(experiment, Experiment)
    for error in errors:
        assert str(error).startswith("spec.yaml: ") and "\n" not in str(error)


@settings(max_examples=200, deadline=None)
@given(values)
def test_validate_never_crashes_on_arbitrary_documents(document):
    experiment, errors = validate_document(Experiment, document, "spec.yaml")
    assert experiment is None and errors


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_cleanly(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("bytes") / "spec.yaml"
    path.write_bytes(content)
    loaded, errors = load_experiments([path])
    assert not loaded and errors and all(str(e).startswith(str(path)) for e in errors)


def test_missing_spec_paths_and_folders(tmp_path):
    done = regimen("validate", str(tmp_path / "nope.yaml"), str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'nope.yaml'}: no such file" in done.stdout and "holds no *.yaml" in done.stdout


def test_a_truncated_dataset_file_refuses_the_run_in_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 255, (5, 28, 28), dtype=np.uint8) for k in ("x_train", "x_test")}
    np.savez(data / "mnist.npz", y_train=np.arange(5), y_test=np.arange(5), **arrays)
    (data / "mnist.npz").write_bytes((data / "mnist.npz").read_bytes()[:300])
    done = regimen("run", "specs/batchnorm.yaml", "--data-dir", str(data), "--results", str(tmp_path / "r"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{data / 'mnist.npz'}: not a readable .npz file" in done.stdout and "nothing was trained" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "r" / "jobs").exists()


def test_a_missing_data_dir_or_a_file_given_as_one_is_one_line(tmp_path, capsys, in_root):
    (tmp_path / "mnist.npz").write_bytes(b"npz")
    for folder, what in ((tmp_path / "none", "no such folder"), (tmp_path / "mnist.npz", "a file, not a folder")):
        assert main(["run", "specs/batchnorm.yaml", "--data-dir", str(folder), "--results", str(tmp_path / "r")]) == 2
        assert capsys.readouterr().out.strip() == f"--data-dir: {what}: '{folder}'"
        assert main(["data", "--data-dir", str(folder)]) == 2  # not "missing" for every dataset, exit 0
        assert capsys.readouterr().out.strip() == f"--data-dir: {what}: '{folder}'"


def test_the_data_folder_from_regimen_data_dir_is_checked_as_data_dir_is(tmp_path, capsys, in_root, monkeypatch):
    monkeypatch.setenv("REGIMEN_DATA_DIR", str(tmp_path / "none"))
    assert main(["data"]) == 2
    assert capsys.readouterr().out.strip() == f"REGIMEN_DATA_DIR: no such folder: '{tmp_path / 'none'}'"
    assert main(["run", "specs/dropout.yaml", "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().out.strip() == f"REGIMEN_DATA_DIR: no such folder: '{tmp_path / 'none'}'"
    synthetic = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--in-process", "--no-report"]
    assert main([*synthetic, "--results", str(tmp_path / "r")]) == 0  # reads no data: the variable is not its


def test_folders_that_cannot_be_entered_are_one_line_each(tmp_path):
    """pathlib's is_dir() and is_file() raise where a folder on the way cannot be entered."""
    prefix = []
    if os.geteuid() == 0:  # root reads everything unless its capability to override permissions is taken
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to take root's permission override away")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(ROOT / "specs" / "l1.yaml", locked / "l1.yaml")
    locked.chmod(0)
    listing = [*prefix, sys.executable, "-c", f"import os; os.listdir({str(locked)!r})"]
    entering = subprocess.run(listing, capture_output=True, text=True, timeout=60)
    if "PermissionError" not in entering.stderr:  # setpriv refused, or inherited capabilities outlive it
        locked.chmod(0o755)
        pytest.skip(f"cannot make a folder this test's commands may not enter: {entering.stderr.strip()[-200:]}")
    expected = {
        ("plan", str(locked / "l1.yaml")): f"{locked / 'l1.yaml'}: cannot read: [Errno 13] Permission denied",
        ("plan", str(locked)): f"{locked}: cannot read: [Errno 13] Permission denied",
        ("data", "--data-dir", str(locked)): f"--data-dir: cannot read it (Permission denied): '{locked}'",
    }
    try:
        for args, said in expected.items():
            command = [*prefix, sys.executable, "-m", "jobs", *args]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 2 and done.stdout.startswith(said), done.stdout + done.stderr
            assert "Traceback" not in done.stdout + done.stderr
    finally:
        locked.chmod(0o755)


def test_without_specs_outside_the_checkout_it_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in ("validate", "plan", "run"):
        assert main([command]) == 2
        out = capsys.readouterr().out
        assert out.startswith(f"no spec given, and no specs/ folder in {tmp_path}: run from Regimen's checkout")


def test_a_corrupt_store_entry_is_retrained_and_the_rest_kept(tmp_path):
    results = tmp_path / "results"
    first = smoke_run(results, "--in-process")
    assert first.returncode == 0, first.stdout + first.stderr
    jobs = sorted((results / "jobs").iterdir())
    kept = json.loads((jobs[1] / "result.json").read_text())
    (jobs[0] / "result.json").write_text('{"test": {"loss": 0.')  # truncated
    (jobs[0] / "checkpoint.zip").unlink(missing_ok=True)
    (results / "experiments" / "dropout.json").write_text("{")
    report = regimen("report", "--results", str(results))
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stdout + report.stderr
    again = smoke_run(results, "--in-process")
    assert again.returncode == 0 and "1 trained, 1 already stored" in again.stdout, again.stdout + again.stderr
    notice = next(line for line in again.stdout.splitlines() if line.startswith("notice: dropout/"))
    assert "result.json: not valid JSON" in notice and notice.endswith("; trained again"), notice
    assert json.loads((jobs[1] / "result.json").read_text()) == kept  # the finished job was not touched
    assert json.loads((jobs[0] / "result.json").read_text())["epochs_run"] == 1
