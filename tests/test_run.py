"""`regimen run` end to end on a real local Ray: the six specs on synthetic data, reruns that skip
finished jobs, a failing job that does not sink the suite, and a GPU request a cluster cannot meet."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, regimen, smoke_run

from jobs import private_network, run
from jobs.cli import main
from jobs.store import Store, StoreBusy

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def suite_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("suite")
    done = regimen("run", "--synthetic", "--max-epochs", "1", "--results", str(results))
    return results, done


def test_the_six_specs_train_on_ray_and_fill_the_store(suite_results):
    results, done = suite_results
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10 jobs: 10 trained, 0 already stored, 0 failed" in done.stdout
    assert "[10/10] done" in done.stdout  # plain progress lines when not a terminal
    assert "Started a local Ray instance" not in done.stderr  # Ray's INFO lines are not the user's business
    store = Store(str(results))
    assert len(store.job_ids()) == 10 and all(store.job(j).is_done() for j in store.job_ids())
    assert store.experiment_names() == sorted(["overfitting", "l1", "l2", "dropout", "batchnorm", "fashion"])
    for job_id in store.job_ids():
        record = store.job(job_id)
        result, history = record.result(), record.history()
        assert len(history["loss"]) == len(history["val_loss"]) == 1 == result["epochs_run"]
        assert result["epochs_capped"] and result["data"]["synthetic"]
        assert result["environment"]["intra_op_threads"] == 1 and result["environment"]["device"] == "CPU"
        assert record.spec()["training"]["epochs"] == 1
    l1 = store.read_experiment("l1")
    l2 = store.read_experiment("l2")
    basic = {j["job_id"] for j in l1["jobs"] + l2["jobs"] if j["variant"] == "basic"}
    assert len(basic) == 1  # trained once, used by both
    assert (results / "report" / "index.html").is_file()


def test_a_rerun_retrains_nothing_and_starts_no_ray(suite_results, monkeypatch, capsys):
    results, _ = suite_results

    def no_executor(options):
        pytest.fail("a rerun with nothing to train started an executor (Ray)")

    monkeypatch.setattr(run, "start_executor", no_executor)  # its speed: benchmarks/targets.py
    monkeypatch.chdir(ROOT)  # the default specs, as the first run planned them
    assert main(["run", "--synthetic", "--max-epochs", "1", "--results", str(results), "--no-report"]) == 0
    assert "10 jobs: 0 trained, 10 already stored, 0 failed" in capsys.readouterr().out


def test_force_retrains_and_seeds_add_jobs(suite_results):
    results, _ = suite_results
    done = smoke_run(results, "--force")
    assert "2 jobs to train, stored ones included (--force); " in done.stdout, done.stdout + done.stderr
    assert "2 jobs: 2 trained, 0 already stored" in done.stdout, done.stdout + done.stderr
    done = smoke_run(results, "--seeds", "2")
    assert "4 jobs: 2 trained, 2 already stored" in done.stdout, done.stdout + done.stderr


def test_a_failing_job_does_not_sink_the_others(tmp_path):
    done = smoke_run(tmp_path, specs=("tests/specs/diverges.yaml", "specs/dropout.yaml"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 trained" in done.stdout and "1 failed" in done.stdout
    failed_line = next(line for line in done.stdout.splitlines() if line.startswith("failed: diverges/exploding"))
    assert "diverged at epoch 1" in failed_line and "log.txt" in failed_line
    store = Store(str(tmp_path))
    states = sorted(store.job(j).status()["state"] for j in store.job_ids())
    assert states == ["done", "done", "done", "failed"]
    failed = next(store.job(j) for j in store.job_ids() if store.job(j).status()["state"] == "failed")
    assert "Diverged" in failed.status()["traceback"] and "diverged" in Path(failed.log_uri).read_text()
    # A diverged loss is a result: the next run keeps it (and still exits 1); --force trains it again
    again = smoke_run(tmp_path, specs=("tests/specs/diverges.yaml",))
    assert again.returncode == 1 and "0 trained, 1 already stored, 0 failed, 1 failed before" in again.stdout
    assert json.loads((tmp_path / "jobs" / failed.id / "status.json").read_text())["attempt"] == 1
    forced = smoke_run(tmp_path, "--force", specs=("tests/specs/diverges.yaml",))
    assert "2 jobs: 1 trained, 0 already stored, 1 failed;" in forced.stdout, forced.stdout
    assert json.loads((tmp_path / "jobs" / failed.id / "status.json").read_text())["attempt"] == 2


def test_failures_that_could_end_differently_are_retried_and_diverged_ones_kept(tmp_path):
    from jobs.loading import load_experiments
    from jobs.plan import expand
    from jobs.run import pending_jobs

    (item,), _ = load_experiments([ROOT / "specs" / "l1.yaml"])
    crashed, diverged = expand([item.experiment])
    store = Store(str(tmp_path))
    for job, retry in ((crashed, True), (diverged, False)):
        store.job(job.id).start(job.describe())
        store.job(job.id).fail("reason", "traceback", "log", retry=retry)
    to_run, finished, kept, _ = pending_jobs([crashed, diverged], store, force=False)
    assert (to_run, finished, kept) == ([crashed], [], [(diverged, "reason")])
    assert pending_jobs([crashed, diverged], store, force=True)[0] == [crashed, diverged]


def test_a_gpu_request_on_a_cluster_without_gpus_fails_fast(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    try:
        spec = tmp_path / "gpu.yaml"
        spec.write_text(
            (ROOT / "specs" / "dropout.yaml").read_text() + "resources: {num_gpus: 0.25, gpu_memory_mb: 2048}\n"
        )
        # the timeout only catches a hang (Ray leaves such a task pending forever); how fast the refusal
        # comes is timed in benchmarks/targets.py
        done = regimen(
            "run", str(spec), "--synthetic", "--address", cluster.address, "--results", str(tmp_path), timeout=300
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "dropout/basic/s0" in done.stdout and "num_gpus=0.25" in done.stdout
        assert "node 1: CPU 1, GPU 0" in done.stdout and "nothing was trained" in done.stdout
        # With that cluster still up, a run without an address starts its own private Ray beside it
        local = smoke_run(tmp_path / "local", env={"RAY_ADDRESS": ""})
        assert local.returncode == 0 and "2 trained" in local.stdout, local.stdout + local.stderr
    finally:
        cluster.shutdown()


def test_the_private_ray_serves_no_dashboard(tmp_path):
    script = (
        "import ray\n"
        "from jobs.run import connect_ray\n"
        "assert connect_ray(None) is True\n"
        "print('dashboard:', ray._private.worker._global_node.webui_url or 'none')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "dashboard: none", done.stdout


def network_refusal() -> str | None:
    """Why a fresh process here cannot enter a private network (a kernel or container that refuses); None."""
    if not private_network.possible_here():
        return private_network.NOT_LINUX
    script = "from jobs import private_network; print(private_network._why_not() or '')"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or None


def test_the_private_ray_has_a_network_of_its_own_with_loopback_alone(tmp_path):
    """Ray 2.60 listens on every interface whatever it is told; `regimen run` restarts itself (same
    process) in a network namespace whose one interface is loopback before it starts its Ray, so that
    nothing Ray opens can be reached from outside it, and keeps its hold on the results folder."""
    import psutil

    if refusal := network_refusal():
        pytest.skip(f"no private network here: {refusal}")
    command = ["run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--no-report"]
    started = subprocess.Popen(
        [sys.executable, "-m", "jobs", *command, "--results", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    try:
        gcs = None
        for _ in range(600):  # the GCS, once it listens (its /proc shows the sockets of its own network)
            with contextlib.suppress(psutil.Error, OSError):
                found = [p for p in psutil.Process(started.pid).children(recursive=True) if p.name() == "gcs_server"]
                sockets = Path(f"/proc/{found[0].pid}/net/tcp").read_text().splitlines()[1:] if found else []
                if any(line.split()[3] == "0A" for line in sockets):  # TCP_LISTEN
                    gcs = found[0]
                    break
            time.sleep(0.2)
        assert gcs is not None, "no GCS listening under the run's process"
        assert os.readlink(f"/proc/{gcs.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        interfaces = Path(f"/proc/{gcs.pid}/net/dev").read_text().splitlines()[2:]  # below two header lines
        assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]
        with pytest.raises(StoreBusy), Store(str(tmp_path)).hold_for_run():  # still held after the restart
            pass
        out, err = started.communicate(timeout=600)
    finally:
        started.kill()
    assert started.returncode == 0, out + err
    assert "2 jobs: 2 trained" in out and out.count("2 jobs to train") == 1, out  # said once, not again inside
    assert f"starting a private Ray on this machine, in a network of its own (pid {started.pid})" in out
    assert "listens on every network interface" not in out
    assert "Failed to determine local IP" not in err  # Ray takes loopback at once, without its warning


def test_the_command_a_private_run_prints_shows_its_ray_from_another_shell(tmp_path):
    """Ray's tools on the host cannot reach the private head, and without an address they pick from every
    Ray on the machine: the run prints the command that shows its own."""
    if refusal := network_refusal():
        pytest.skip(f"no private network here: {refusal}")
    started = subprocess.Popen(  # the overfit job's 150 epochs outlast the look
        [sys.executable, "-m", "jobs", "run", "specs/overfitting.yaml", "--synthetic", "--results", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "RAY_ADDRESS": "", "PYTHONUNBUFFERED": "1"},
    )
    try:
        said = next((line for line in started.stdout if line.startswith("Ray's head: ")), "")
        command = said.partition("from another shell: ")[2].strip()
        assert command.startswith(f"RAY_AUTH_MODE=token nsenter --target {started.pid} --net"), said
        shown = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
        started.send_signal(signal.SIGTERM)  # not SIGINT, which a shell's background job inherits ignored
        started.communicate(timeout=120)
    finally:
        started.kill()
    assert shown.returncode == 0 and "Active:" in shown.stdout and re.search(r"/\d+\.\d+ CPU", shown.stdout), shown


def test_a_run_the_kernel_refuses_a_private_network_says_why_and_goes_on(tmp_path):
    """Root without CAP_SYS_ADMIN, as in a container: the kernel refuses the namespace; the program (its
    console script here) restarts, finds out, and runs with its head guarded by the token."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to take CAP_SYS_ADMIN away")
    program = Path(sys.executable).parent / "regimen"
    command = [str(program), "run", "specs/dropout.yaml", "--synthetic", "--max-epochs", "1", "--no-report"]
    done = subprocess.run(
        [setpriv, "--bounding-set", "-sys_admin", *command, "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "notice: the private Ray head listens on every network interface, guarded by its token: the kernel refused "
        "a network namespace (unshare: Operation not permitted; root without CAP_SYS_ADMIN"
    ) in done.stdout
    assert "2 jobs: 2 trained" in done.stdout and done.stdout.count("2 jobs to train") == 1


def test_a_process_with_threads_is_not_moved_and_says_why():
    script = (
        "import os, threading\n"
        "from jobs import private_network\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "before = os.readlink('/proc/self/ns/net')\n"
        "os.environ[private_network.STATE] = private_network.ENTER\n"
        "private_network.enter_if_asked()\n"
        "print(private_network.state())\n"
        "print(os.readlink('/proc/self/ns/net') == before)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == [
        "it had started threads before it could enter one (the kernel requires a single thread)",
        "True",
    ], done.stderr


def test_a_state_set_by_hand_or_inherited_is_not_believed():
    """Only a restart's own request counts: a value in the environment (set by hand, or inherited by Ray's
    workers) is removed at once and claims nothing, so such a run still restarts into its network."""
    script = (
        "import os\n"
        "from jobs import private_network\n"
        "os.environ[private_network.STATE] = private_network.INSIDE\n"
        "private_network.enter_if_asked()\n"
        "print(private_network.state(), private_network.STATE in os.environ)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "None False", done.stderr


def test_only_the_programs_own_run_of_a_private_ray_for_local_files_restarts_or_warns(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(private_network, "_state", None)  # this process has not restarted
    program = run.RunOptions(restartable=True)
    folder, bucket = Store("results"), Store("memory://a-bucket")
    assert run.wants_private_network(program, folder) == private_network.possible_here()
    assert not run.wants_private_network(run.RunOptions(), folder)  # called as a library: goes on as it is
    assert not run.wants_private_network(program, bucket)  # its jobs need the network
    assert not run.wants_private_network(run.RunOptions(restartable=True, address="10.0.0.2:6379"), folder)
    assert not run.wants_private_network(run.RunOptions(restartable=True, executor="local"), folder)
    local = run.RunOptions(restartable=True, address="local")  # Ray's name for a new Ray on this machine
    assert run.cluster_address(local) is None
    assert run.wants_private_network(local, folder) == private_network.possible_here()
    assert run.exposure(program, bucket, local=True) == [
        "the private Ray head listens on every network interface, guarded by its token: its jobs write to a "
        "bucket, over the network (README, Security)"
    ]
    assert run.exposure(program, folder, local=False) == []  # a cluster's head is the cluster's business
    monkeypatch.setattr(private_network, "_state", private_network.INSIDE)
    assert not run.wants_private_network(program, folder)  # restarted once already
    assert run.exposure(program, folder, local=True) == []


def test_a_gpu_request_on_this_machine_runs_on_cpu_after_a_notice(tmp_path):
    spec = tmp_path / "gpu.yaml"
    spec.write_text((ROOT / "specs" / "dropout.yaml").read_text() + "resources: {num_gpus: 0.5, gpu_memory_mb: 2048}\n")
    done = regimen("run", str(spec), "--synthetic", "--max-epochs", "1", "--results", str(tmp_path), "--no-report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notice: a GPU asked for by 2 jobs, and this machine has none: running on CPU" in done.stdout
    refused = regimen("run", str(spec), "--synthetic", "--require-gpu", "--force", "--results", str(tmp_path))
    assert refused.returncode == 2 and "--require-gpu" in refused.stdout


def test_the_backend_flag_trains_on_jax_beside_the_tensorflow_results(tmp_path):
    assert smoke_run(tmp_path, "--in-process").returncode == 0
    done = smoke_run(tmp_path, "--in-process", "--backend", "jax")  # the driver imports no backend first
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 jobs: 2 trained, 0 already stored" in done.stdout  # other jobs: the TensorFlow ones are kept
    assert "JAX uses every core" not in done.stdout  # in one process, jobs run one after another, not side by side
    store = Store(str(tmp_path))
    backends = sorted(store.job(j).result()["environment"]["backend"] for j in store.job_ids())
    assert backends == ["jax", "jax", "tensorflow", "tensorflow"]


def test_one_process_training_job_after_job_is_not_warned_of_retracing(tmp_path):
    """TensorFlow warns of "retracing" from the sixth train function a process makes: each job makes its
    own, as it should (``worker.not_retracing``)."""
    done = smoke_run(tmp_path, "--in-process", "--seeds", "3")
    assert "6 jobs: 6 trained" in done.stdout, done.stdout + done.stderr
    assert "retracing" not in done.stderr, done.stderr


def test_the_precision_flag_trains_other_jobs_and_records_their_precision(tmp_path):
    assert smoke_run(tmp_path, "--in-process").returncode == 0
    done = smoke_run(tmp_path, "--in-process", "--precision", "mixed_bfloat16")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 jobs: 2 trained, 0 already stored" in done.stdout
    store = Store(str(tmp_path))
    precisions = sorted(store.job(j).result()["environment"]["precision"] for j in store.job_ids())
    assert precisions == ["float32", "float32", "mixed_bfloat16", "mixed_bfloat16"]  # as the models were built
    assert store.read_experiment("dropout")["run"]["precision"] == "mixed_bfloat16"
    on_jax = smoke_run(tmp_path, "--in-process", "--backend", "jax", "--precision", "mixed_bfloat16")
    assert "2 jobs: 2 trained, 0 already stored" in on_jax.stdout, on_jax.stdout + on_jax.stderr
    environments = [store.job(j).result()["environment"] for j in store.job_ids()]
    assert sum(e["backend"] == "jax" and e["precision"] == "mixed_bfloat16" for e in environments) == 2


def test_an_in_process_run_mixing_backends_is_refused_before_training(tmp_path):
    document = yaml.safe_load((ROOT / "specs" / "dropout.yaml").read_text())
    on_jax = tmp_path / "dropout-jax.yaml"
    on_jax.write_text(yaml.safe_dump({**document, "name": "dropout-jax", "backend": "jax"}))
    done = smoke_run(tmp_path / "results", "--in-process", specs=("specs/dropout.yaml", str(on_jax)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("--in-process: these jobs train on jax and tensorflow")
    assert "Traceback" not in done.stderr and not (tmp_path / "results" / "jobs").exists()


HOLD_A_LOCAL_HEAD = """
import sys, ray
from jobs.run import connect_ray
connect_ray(None)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
"""
CONNECT = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except ConnectionError:
    sys.exit(3)
print(ray.cluster_resources().get("CPU"))
"""


#: Ray 2.60's autoscaler and dashboard processes serve Prometheus metrics on every interface, on these fixed
#: ports, with no setting to bind or turn them off (README, Security); every other metrics exporter is off
RAYS_UNBINDABLE_METRICS = {44217, 44227}


def open_metrics_endpoints(pid: int, host: str) -> set[int]:
    """The ports on every interface where a process of ``pid``'s tree answers ``GET /metrics`` with 200."""
    import urllib.request

    import psutil

    root = psutil.Process(pid)
    ports = set()
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker that just ended
            listening = [c for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN]
            ports |= {c.laddr.port for c in listening if c.laddr.ip in ("0.0.0.0", "::")}
    answering = set()
    for port in ports:
        with contextlib.suppress(Exception):  # gRPC ports answer HTTP with garbage
            if urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3).status == 200:
                answering.add(port)
    return answering


def test_the_local_ray_head_refuses_peers_without_its_token(tmp_path):
    """Ray 2.60 listens on every interface and has no setting to bind loopback only; what guards the
    private head that `regimen run` starts is Ray's token authentication: a client that reaches the
    head's network address without the token is refused."""
    home = tmp_path / "home"  # where Ray writes the head's token
    home.mkdir()
    own = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    head = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_LOCAL_HEAD],
        cwd=ROOT,
        env=own,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = head.stdout.readline().strip()
        assert (home / ".ray" / "auth_token").stat().st_mode & 0o077 == 0  # readable by its owner only
        if address.startswith(("127.", "localhost")):
            pytest.skip("this machine has no network address besides loopback")
        with_token = own | {"RAY_AUTH_MODE": "token"}  # a client sends its token only when told to
        client = [sys.executable, "-c", CONNECT, address]
        for peer in ({**own, "HOME": str(tmp_path)}, {**with_token, "RAY_AUTH_TOKEN": "0" * 64}):  # none, wrong
            refused = subprocess.run(client, env=peer, capture_output=True, text=True, timeout=120)
            assert refused.returncode == 3, refused.stdout + refused.stderr
            assert "Authentication token is missing or incorrect" in refused.stderr
        with_token = subprocess.run(client, env=with_token, capture_output=True, text=True, timeout=120)
        assert with_token.returncode == 0, with_token.stderr  # the same client, given the token, gets in
        # `regimen run --address` without the token: refused at once, in a line that says what to export, not
        # after the 20 s of Ray's own retries with a line of C++ logging each
        refused = regimen(
            "run",
            "specs/dropout.yaml",
            "--synthetic",
            "--address",
            address,
            "--results",
            str(tmp_path / "results"),
            env={**own, "HOME": str(tmp_path), "RAY_AUTH_MODE": "disabled"},
            timeout=300,
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"the Ray cluster at {address} wants a token (token authentication)" in refused.stdout
        assert "export RAY_AUTH_MODE=token" in refused.stdout and "Traceback" not in refused.stderr
        assert "gcs_client" not in refused.stderr, refused.stderr
        assert open_metrics_endpoints(head.pid, address.rsplit(":", 1)[0]) <= RAYS_UNBINDABLE_METRICS
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def test_a_token_ray_made_readable_by_every_user_is_made_private(tmp_path, monkeypatch):
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("f" * 64)
    token.chmod(0o644)  # as Ray 2.60 writes it
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    run.private_token()
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == "f" * 64  # the same token, kept
