"""GPU and CPU requests are checked against the nodes before dispatch: no silent hang."""

import os
from dataclasses import replace
from types import SimpleNamespace

import pytest
from helpers import SPECS, load_specs, with_resources

from jobs import worker
from jobs.gpus import gpu_total_mb, local_gpus
from jobs.plan import expand
from jobs.resources import check
from jobs.run import max_gpus_per_node
from jobs.worker import configure_backend, deterministic_gpu_ops, jax_environment


@pytest.fixture(scope="module")
def gpu_jobs():
    (experiment,) = load_specs(SPECS / "dropout.yaml")
    experiment = experiment.model_copy(
        update={"resources": experiment.resources.model_copy(update={"num_gpus": 0.25, "gpu_memory_mb": 2048})}
    )
    return expand([experiment])


CPU_NODE = {"CPU": 2.0}
GPU_NODE = {"CPU": 8.0, "GPU": 1.0}


def test_local_without_gpu_runs_gpu_jobs_on_cpu_after_a_notice(gpu_jobs):
    result = check(gpu_jobs, [CPU_NODE], local=True)
    assert not result.errors and len(result.notices) == 1 and "running on CPU" in result.notices[0]
    assert all(job.resources.num_gpus == 0 and job.resources.gpu_memory_mb is None for job in result.jobs)
    assert [job.id for job in result.jobs] == [job.id for job in gpu_jobs]


def test_require_gpu_turns_the_notice_into_an_error(gpu_jobs):
    result = check(gpu_jobs, [CPU_NODE], local=True, require_gpu=True)
    assert result.jobs == [] and "--require-gpu" in result.errors[0]


def test_a_cluster_without_gpu_refuses_naming_job_request_and_offer(gpu_jobs):
    result = check(gpu_jobs, [{"CPU": 0.0}, CPU_NODE], local=False)
    (message,) = result.errors  # one line for the jobs asking the same
    assert message.startswith(f"2 jobs ({gpu_jobs[0].label} and 1 more) ask for num_cpus=1, num_gpus=0.25, ")
    assert "which no node offers (node 1: CPU 0, GPU 0; node 2: CPU 2, GPU 0)" in message
    (one,) = check(gpu_jobs[:1], [CPU_NODE], local=False).errors
    assert one.startswith(f"1 job ({gpu_jobs[0].label}) asks for num_cpus=1, num_gpus=0.25, ")


def test_feasible_requests_pass_unchanged(gpu_jobs):
    result = check(gpu_jobs, [{"CPU": 0.0}, GPU_NODE], local=False)
    assert result.errors == [] and result.notices == [] and result.jobs == gpu_jobs


def test_too_many_cpus_is_refused_too(gpu_jobs):
    big = [with_resources(job, num_cpus=16) for job in gpu_jobs]
    assert check(big, [GPU_NODE], local=False).errors == [
        "2 jobs (dropout/basic/s0 and 1 more) ask for num_cpus=16, num_gpus=0.25, which no node offers "
        "(node 1: CPU 8, GPU 1)"
    ]


def test_a_job_asking_all_a_node_has_fits(gpu_jobs):
    whole_node = [with_resources(job, num_cpus=8, num_gpus=1) for job in gpu_jobs]
    assert check(whole_node, [GPU_NODE], local=False).errors == []
    over = [with_resources(job, num_cpus=8, num_gpus=2) for job in gpu_jobs]
    assert len(check(over, [GPU_NODE], local=False).errors) == 1


def test_caps_beyond_their_share_of_this_machines_gpu_are_refused_before_dispatch(gpu_jobs):
    """Four jobs at 0.25 of a GPU each capped at 2048 MB need 8192 MB of it and their CUDA contexts: out of
    memory mid-run on 6000, so refused before anything trains; within their share of 8192, not refused; a
    cluster's GPUs are not known, and jobs one at a time (--in-process) have the GPU each to itself."""
    assert check(gpu_jobs, [GPU_NODE], local=True, gpu_memory_total_mb=8192).errors == []
    assert check(gpu_jobs, [GPU_NODE], local=False).errors == []
    assert check(gpu_jobs, [GPU_NODE], local=True, gpu_memory_total_mb=6000).errors == [
        "2 jobs (dropout/basic/s0 and 1 more) ask for gpu_memory_mb=2048 at num_gpus=0.25: Ray puts jobs on this "
        "machine's GPU, 6000 MB, until their shares make one whole, so that share's cap is at most 1500 MB; "
        "lower gpu_memory_mb or raise num_gpus"
    ]
    whole = [with_resources(job, num_gpus=1) for job in gpu_jobs]  # uncapped: takes what the GPU has
    assert check(whole, [GPU_NODE], local=True, gpu_memory_total_mb=1000).errors == []
    assert check(gpu_jobs, [GPU_NODE], local=True, side_by_side=False, gpu_memory_total_mb=6000).errors == []
    mixed = [gpu_jobs[0], with_resources(gpu_jobs[1], gpu_memory_mb=4096)]
    assert [error.split(":")[0] for error in check(mixed, [GPU_NODE], local=True, gpu_memory_total_mb=6000).errors] == [
        "1 job (dropout/basic/s0) asks for gpu_memory_mb=2048 at num_gpus=0.25",
        "1 job (dropout/dropout/s0) asks for gpu_memory_mb=4096 at num_gpus=0.25",
    ]


def test_a_memory_cap_that_caps_nothing_is_a_notice(gpu_jobs):
    whole = [with_resources(job, num_gpus=1) for job in gpu_jobs]  # gpu_memory_mb 2048 from the fixture
    (notice,) = check(whole, [GPU_NODE], local=False).notices
    assert notice == (
        "gpu_memory_mb ignored for 2 jobs: it caps the memory of a shared GPU (0 < num_gpus < 1), and these ask "
        "num_gpus=1"
    )
    assert check(gpu_jobs, [GPU_NODE], local=False).notices == []  # 0.25 of a GPU: capped


def test_jax_jobs_side_by_side_on_cpu_are_told_they_share_the_cores(gpu_jobs):
    jax = [replace(with_resources(job, num_gpus=0, gpu_memory_mb=None), backend="jax") for job in gpu_jobs]
    (notice,) = check(jax, [CPU_NODE], local=True).notices
    assert notice.startswith("2 JAX jobs on CPU: JAX uses every core of its node whatever num_cpus asks")
    assert notice.endswith("--num-cpus 2 runs one at a time on each node")
    one_at_a_time = [with_resources(job, num_cpus=2) for job in jax]
    assert check(one_at_a_time, [CPU_NODE], local=True).notices == []
    assert check(jax, [CPU_NODE], local=True, side_by_side=False).notices == []  # --in-process: one after another


def test_jax_starts_with_the_jobs_platform_memory_cap_and_deterministic_kernels():
    assert jax_environment(0, None, None, "") == {"JAX_PLATFORMS": "cpu"}
    assert jax_environment(1, None, None, "--xla_dump_to=/tmp/x") == {
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",  # a whole GPU: grow as needed
        "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=true",
    }
    shared = jax_environment(0.25, 2048, 143_771, "")
    assert shared["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.014244"  # rounded down: 2047.9 of 143 771 MiB
    assert "XLA_FLAGS" not in jax_environment(1, None, None, "--xla_gpu_deterministic_ops=false")  # the user's own


def test_deterministic_gpu_kernels_are_read_from_the_xla_flags_as_xla_reads_them():
    assert deterministic_gpu_ops("--xla_gpu_deterministic_ops=true")
    assert deterministic_gpu_ops("--xla_dump_to=x --xla_gpu_deterministic_ops")
    assert deterministic_gpu_ops("--xla_gpu_deterministic_ops=1")
    assert not deterministic_gpu_ops("--xla_gpu_deterministic_ops=false")
    assert not deterministic_gpu_ops("--xla_gpu_deterministic_ops=true --xla_gpu_deterministic_ops=false")
    assert not deterministic_gpu_ops("")


def test_gpus_are_counted_and_sized_with_nvidia_smi_without_a_framework(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"  # two GPUs; answers the two queries Regimen asks
    fake.write_text(
        '#!/bin/sh\ncase "$*" in\n  *--query-gpu=index*) printf "0\\n1\\n" ;;\n'
        "  *--id=1*--query-gpu=memory.total*) echo 143771 ;;\n  *) exit 9 ;;\nesac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert local_gpus() == 2.0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # what Ray gives a task holding GPU 1
    assert local_gpus() == 1.0 and gpu_total_mb() == 143_771
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert local_gpus() == 0.0
    with pytest.raises(RuntimeError, match="cannot read the GPU's memory with nvidia-smi"):
        gpu_total_mb()


def test_reduced_precision_on_a_cpu_without_native_bfloat16_gets_a_notice():
    dropout = load_specs(SPECS / "dropout.yaml")
    mixed = expand(dropout, precision="mixed_bfloat16")
    (notice,) = check(mixed, [CPU_NODE], local=True, native_bfloat16=False).notices
    assert notice.startswith("mixed_bfloat16 for 2 jobs, but this CPU has no native bfloat16 multiply")
    assert not check(mixed, [CPU_NODE], local=True, native_bfloat16=True).notices
    assert not check(mixed, [CPU_NODE], local=True, native_bfloat16=None).notices  # not Linux: unknown
    assert not check(mixed, [CPU_NODE], local=False, native_bfloat16=False).notices  # a cluster's nodes differ
    assert not check(expand(dropout), [CPU_NODE], local=True, native_bfloat16=False).notices
    on_gpu = [with_resources(job, num_gpus=1) for job in mixed]  # a GPU multiplies bfloat16 whatever the CPU
    assert not check(on_gpu, [GPU_NODE], local=True, native_bfloat16=False).notices


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("flags\t: fpu avx512f avx512_bf16 amx_tile\n", True),
        ("Features\t: fp asimd sve bf16 i8mm\n", True),  # Arm
        ("flags\t: fpu avx2 fma\n", False),
        (None, None),
    ],
)
def test_native_bfloat16_reads_the_cpu_flags(tmp_path, cpuinfo, expected):
    from jobs.cpus import native_bfloat16

    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert native_bfloat16(path) is expected


def test_the_cpu_model_name_comes_from_cpuinfo(tmp_path):
    from jobs.cpus import model_name

    path = tmp_path / "cpuinfo"
    assert model_name(path) is None  # not Linux
    path.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n")
    assert model_name(path) == "Intel(R) Xeon(R) Processor"


def test_the_most_gpus_a_node_has_is_unknown_unless_every_node_is_known():
    alive = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 4.0}]
    assert max_gpus_per_node(alive, all_known=True) == 1.0
    assert max_gpus_per_node([*alive, {"CPU": 32.0, "GPU": 4.0}], all_known=True) == 4.0
    assert max_gpus_per_node([{"CPU": 2.0}], all_known=True) == 0.0
    assert max_gpus_per_node(alive, all_known=False) is None  # nodes nobody has seen may join


def test_the_users_word_on_gpus_per_node_covers_nodes_not_seen_but_not_the_nodes_seen():
    alive = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": 4.0}]
    assert max_gpus_per_node(alive, all_known=False, stated=1) == 1.0
    assert max_gpus_per_node([{"CPU": 4.0}], all_known=False, stated=1) == 1.0  # the GPU workers not up yet
    assert max_gpus_per_node([*alive, {"CPU": 32.0, "GPU": 4.0}], all_known=False, stated=1) == 4.0
    assert max_gpus_per_node(alive, all_known=True, stated=2) == 2.0


def test_a_process_set_up_for_one_gpu_refuses_a_job_given_another(monkeypatch):
    monkeypatch.setattr(worker, "_gpus_set_up", "0")  # an earlier job in this process set up GPU 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # Ray gave this job GPU 1
    with pytest.raises(RuntimeError, match="set up GPU '0' for an earlier job, and Ray gave this job GPU '1'"):
        configure_backend("tensorflow", 1, 0.25, 2048)


def test_gpus_per_node_reaches_the_executor_of_a_cluster_that_publishes_no_node_types(monkeypatch, tmp_path, in_root):
    import jobs.run
    from jobs.cli import main

    # no Ray here: what `regimen run` hands the executor is what this test is about
    monkeypatch.setattr(jobs.run, "RayExecutor", lambda off, max_gpus_per_node: SimpleNamespace(**locals()))
    monkeypatch.setattr(jobs.run, "connect_ray", lambda address: False)  # a cluster, not a local Ray
    monkeypatch.setattr(jobs.run, "autoscaler_node_types", lambda: [])  # KubeRay without autoscaling
    monkeypatch.setattr(jobs.run, "alive_nodes", lambda: [{"CPU": 4.0}])  # only the head is up yet
    seen = []

    def execute(loaded, store, options, console):
        seen.append(jobs.run.start_executor(options)[0].max_gpus_per_node)
        raise jobs.run.RunRefused(["stopped before training"])

    monkeypatch.setattr(jobs.run, "execute", execute)
    for flag in (["--gpus-per-node", "1"], []):
        assert main(["run", "--address", "ray://head:10001", "--results", str(tmp_path), *flag]) == 2
    assert seen == [1.0, None]
