"""Shared fixtures: the repository's spec folder, a quiet TensorFlow, `validate` on TensorFlow in this process,
an empty bucket store, and Ray clusters that ask for a token."""

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_AUTH_MODE", "token")
# Ray reads RAY_AUTH_MODE once a process, when first imported: imported here, a test that unsets it later
# (the token advice's tests) cannot turn token authentication off for the session's later Ray clusters
import ray
from helpers import ROOT, SPECS

from jobs import cli
from jobs.store import Store


@pytest.fixture(autouse=True)
def validate_on_tensorflow(monkeypatch):
    """A process runs one Keras backend, and this one trains on TensorFlow in its in-process tests: so
    `regimen validate` called here builds on TensorFlow too, not on the numpy backend it picks when it has
    the process to itself (which tests/test_cli.py checks in a subprocess)."""
    monkeypatch.setattr(cli, "building_backend", lambda: "tensorflow")


@pytest.fixture
def bucket():
    """An empty store in a bucket of its own (fsspec's memory:// standing in for s3://), removed afterwards:
    fsspec's memory filesystem lives as long as the test process."""
    store = Store(f"memory://regimen-{uuid.uuid4().hex}/results")
    yield store
    if store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)


@pytest.fixture
def specs_dir() -> Path:
    return SPECS


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository as the working directory (the CLI's default paths are relative)."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture(scope="session")
def local_ray():
    """A private single-node Ray for the tests that need one, shut down at the end."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}},
    )
    yield ray
    ray.shutdown()
