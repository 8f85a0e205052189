"""Jobs: one per variant and seed, ids from what changes the result, identical jobs merged."""

import pytest
from helpers import load_specs

from jobs.plan import expand, job_id


@pytest.fixture(scope="module")
def experiments():
    return load_specs()


def test_one_seed_gives_ten_distinct_jobs_for_eleven_variants(experiments):
    jobs = expand(experiments)
    assert len(jobs) == 10
    assert sum(len(job.uses) for job in jobs) == 11
    (shared,) = [job for job in jobs if len(job.uses) == 2]
    assert {(u.experiment, u.variant) for u in shared.uses} == {("l1", "basic"), ("l2", "basic")}
    assert shared.label == "l1/basic/s0 (also l2/basic)"  # the progress view and messages name both uses


def test_seeds_multiply_jobs_and_pair_variants(experiments):
    jobs = expand(experiments, seeds=3)
    assert len(jobs) == 30
    assert sorted({job.seed for job in jobs}) == [0, 1, 2]


def test_ids_are_stable_and_do_not_depend_on_names(experiments):
    first = [job.id for job in expand(experiments)]
    renamed = [
        e.model_copy(
            update={
                "name": f"x{e.name}",
                "title": "other",
                "variants": tuple(v.model_copy(update={"name": f"v{i}"}) for i, v in enumerate(e.variants)),
            }
        )
        for e in experiments
    ]
    assert [job.id for job in expand(renamed)] == first
    assert first[0] == job_id(expand(experiments)[0].identity())  # same input, same hash, every time


def test_ids_change_with_what_changes_the_result(experiments):
    base = {job.id for job in expand(experiments)}
    assert base.isdisjoint(job.id for job in expand(experiments, synthetic=True))
    capped = expand(experiments, max_epochs=2)
    assert base.isdisjoint(job.id for job in capped)
    assert all(job.training.epochs <= 2 and job.epochs_capped for job in capped)
    assert {job.requested_epochs for job in capped} == {20, 150, 40}
    assert base.isdisjoint(job.id for job in expand(experiments, seeds=2) if job.seed == 1)


def test_resources_do_not_change_ids_and_shared_jobs_take_the_larger_request(experiments):
    l1, l2 = (e for e in experiments if e.name in ("l1", "l2"))
    bigger = l2.model_copy(
        update={"resources": l2.resources.model_copy(update={"num_cpus": 2, "num_gpus": 0.5, "gpu_memory_mb": 2048})}
    )
    for order in ([l1, bigger], [bigger, l1]):  # the larger request listed last, then first
        shared = [job for job in expand(order) if len(job.uses) == 2]
        assert len(shared) == 1
        resources = shared[0].resources
        assert (resources.num_cpus, resources.num_gpus, resources.gpu_memory_mb) == (2, 0.5, 2048)
    assert {job.id for job in expand([l1, bigger])} == {job.id for job in expand([l1, l2])}


def test_resource_overrides_apply_to_every_job_and_keep_the_ids(experiments):
    overridden = expand(experiments, resources={"num_gpus": 0.25, "gpu_memory_mb": 4096})
    assert [job.id for job in overridden] == [job.id for job in expand(experiments)]
    assert {(job.resources.num_cpus, job.resources.num_gpus, job.resources.gpu_memory_mb) for job in overridden} == {
        (1, 0.25, 4096)
    }


def test_the_backend_is_part_of_a_jobs_identity(experiments):
    tensorflow = expand(experiments)
    jax = expand(experiments, backend="jax")
    assert {job.backend for job in tensorflow} == {"tensorflow"} and {job.backend for job in jax} == {"jax"}
    assert {job.id for job in tensorflow}.isdisjoint(job.id for job in jax)
    in_the_spec = [experiment.model_copy(update={"backend": "jax"}) for experiment in experiments]
    assert [job.id for job in expand(in_the_spec)] == [job.id for job in jax]


def test_precision_is_part_of_a_jobs_identity_and_float32_ids_are_unchanged(experiments):
    float32 = expand(experiments)
    mixed = expand(experiments, precision="mixed_bfloat16")
    assert {job.precision for job in float32} == {"float32"} and {job.precision for job in mixed} == {"mixed_bfloat16"}
    assert {job.id for job in float32}.isdisjoint(job.id for job in mixed)
    assert all("precision" not in job.identity() for job in float32)  # the ids results were stored under
    in_the_spec = [experiment.model_copy(update={"precision": "mixed_bfloat16"}) for experiment in experiments]
    assert [job.id for job in expand(in_the_spec)] == [job.id for job in mixed]
    assert [job.id for job in expand(in_the_spec, precision="float32")] == [job.id for job in float32]


def test_tensorflow_job_ids_are_those_stored_before_backends_were_selectable(experiments):
    """Results stored before the spec had a backend field keep matching their jobs."""
    (l1_basic,) = [job for job in expand(experiments) if len(job.uses) == 2]
    assert l1_basic.id == "7692286bbaad3966"  # computed by the code before the change
