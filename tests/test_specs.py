"""The six seed experiments load, and every class of bad spec is refused with file, field and reason."""

import copy
import os
from pathlib import Path

import pytest
import yaml
from helpers import SPECS

from jobs.loading import load_experiments
from jobs.words import count

SUITE = ["overfitting", "l1", "l2", "dropout", "batchnorm", "fashion"]


def test_the_suite_loads_the_six_experiments_in_order(specs_dir):
    loaded, errors = load_experiments([specs_dir])
    assert errors == []
    assert [item.experiment.name for item in loaded] == SUITE


def test_the_seed_settings_are_kept(specs_dir):
    loaded = {item.experiment.name: item.experiment for item in load_experiments([specs_dir])[0]}
    overfitting = loaded["overfitting"]
    basic, overfit = (overfitting.resolved_training(v) for v in overfitting.variants)
    assert (basic.epochs, basic.batch_size, overfit.epochs, overfit.batch_size) == (20, 500, 150, 1000)
    assert overfitting.dataset.num_words == 100
    fashion = loaded["fashion"].training
    assert (fashion.epochs, fashion.batch_size, fashion.metrics) == (40, 1000, ("accuracy",))
    for name in ("l1", "l2", "dropout", "batchnorm"):
        training = loaded[name].training
        assert (training.epochs, training.batch_size, training.optimizer.name) == (20, 500, "adam")
        assert training.validation == "test"
    claim = loaded["fashion"].claims[0]
    assert (claim.variant, claim.metric, claim.at_least) == ("develop", "accuracy", 0.86)


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def l1_with(tmp_path: Path, edit) -> Path:
    """specs/l1.yaml with one change applied to its parsed document."""
    document = yaml.safe_load((SPECS / "l1.yaml").read_text())
    edit(document)
    return write(tmp_path, yaml.safe_dump(document, sort_keys=False))


def errors_of(path: Path) -> list[str]:
    loaded, errors = load_experiments([path])
    assert loaded == []
    return [str(e) for e in errors]


def set_layer(index, **fields):
    def edit(document):
        document["variants"][0]["layers"][index] = fields

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (set_layer(0, kind="dense", unit=256), "variants.0.layers.0.unit: unknown key 'unit' (did you mean 'units'?)"),
        (set_layer(0, kind="dropout", rate=1.5), "variants.0.layers.0.rate: Input should be less than 1"),
        (set_layer(0, kind="dense", units=8, activation="rellu"), "'rellu' is not allowed (did you mean 'relu'?)"),
        (set_layer(0, kind="dense", units=8, activation="ReLU"), "'ReLU' is not allowed (did you mean 'relu'?)"),
        (lambda d: d["claims"][0].update(metric="acc"), "unknown metric 'acc' (did you mean 'accuracy'?)"),
        (set_layer(0, kind="dens", units=8), "unknown layer kind 'dens' (did you mean 'dense'?)"),
        (set_layer(0, kind="dense", units=0), "variants.0.layers.0.units: Input should be greater than or equal to 1"),
        (
            set_layer(2, kind="dense", units=10, activation="softmax"),
            "variants.0.layers.2: the output layer on imdb with binary_crossentropy must be dense(1, sigmoid); "
            "got dense(10, softmax)",
        ),
        (
            lambda d: d["claims"][0].update(lower_than="basc"),
            "claims.0.lower_than: no variant named 'basc' (did you mean 'basic'?)",
        ),
        (lambda d: d["claims"][0].update(metric="acuracy"), "claims.0.metric: unknown metric 'acuracy'"),
        (lambda d: d.update(headline_metric="f1"), "headline_metric: unknown metric 'f1'"),
        (
            lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy", "at_least": 86}]),
            "claims.0.at_least: accuracy is a fraction from 0 to 1, so at_least 86 can never be met (for 86% write "
            "0.86)",
        ),
        (
            lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy", "at_most": 1.5}]),
            "claims.0.at_most: accuracy is a fraction from 0 to 1, so at_most 1.5 always holds (for 1.5% write 0.015)",
        ),
        (
            lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy", "at_least": -0.1}]),
            "claims.0.at_least: accuracy is a fraction from 0 to 1, so at_least -0.1 always holds",
        ),
        (
            lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy", "at_least": 0.5, "at_most": 0.9}]),
            "claims.0: a claim needs exactly one of lower_than, higher_than (a variant) or at_least, at_most (a "
            "number); got at_least, at_most",
        ),
        (lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy"}]), "claims.0: a claim needs exactly one"),
        (
            lambda d: d.update(claims=[{"variant": "l1", "metric": "accuracy", "lower_than": "l1"}]),
            "claims.0: a claim compares a variant with itself",
        ),
        (lambda d: d["training"].update(epochs=0), "training.epochs: Input should be greater than or equal to 1"),
        (lambda d: d["training"].update(batch_size=0), "training.batch_size: Input should be greater than or equal"),
        (lambda d: d["training"].update(epochs=10**9), "training.epochs: Input should be less than or equal to 100000"),
        (lambda d: d["training"].update(epochs="ten"), "training.epochs: Input should be a valid integer"),
        (
            lambda d: d["training"].update(epochs=True),
            "training.epochs: expected a number; YAML reads unquoted true/false, yes/no and on/off as booleans "
            "(got true)",
        ),
        (set_layer(0, kind="dropout", rate=False), "variants.0.layers.0.rate: expected a number; YAML reads"),
        (lambda d: d.update(resources={"num_gpus": True}), "resources.num_gpus: expected a number; YAML reads"),
        (
            set_layer(0, kind="dropout", rate=-0.1),
            "variants.0.layers.0.rate: Input should be greater than or equal to 0",
        ),
        (
            set_layer(0, kind="dense", units=8, kernel_regularizer={"l1": -1}),
            "variants.0.layers.0.kernel_regularizer.l1: Input should be greater than or equal to 0",
        ),
        (lambda d: d["variants"][0].update(name="a/b"), "variants.0.name: expected lowercase letters, digits, _ and -"),
        (lambda d: d.update(seeds=0), "seeds: Input should be greater than or equal to 1"),
        (lambda d: d["training"].update(loss="sparse_categorical_crossentropy"), "training.loss: imdb needs loss"),
        (lambda d: d.update(variants=[]), "variants: expected at least 1 item, got 0"),
        (lambda d: d["variants"][1].update(name="basic"), "variants.1.name: duplicate variant name 'basic'"),
        (lambda d: d.update(name="../escape"), "name: expected lowercase letters, digits, _ and -, starting with a "),
        (
            lambda d: d["training"].update(metrics=["accuracy", "sparse_categorical_crossentropy"]),
            "training.metrics.1: imdb takes the cross-entropy 'binary_crossentropy', not 'sparse_categorical_",
        ),
        (
            lambda d: d["training"].update(metrics=["accuracy", "binary_crossentropy", "accuracy"]),
            "training.metrics.2: 'accuracy' is listed twice",
        ),
        (lambda d: d.update(dataset="imdb"), "dataset: expected a mapping such as {name: imdb} (got 'imdb')"),
        (
            lambda d: d["claims"][0].update(lower_than=0.5),
            "claims.0.lower_than: expected the name of a variant (got 0.5); to compare with a number, use at_least",
        ),
        (
            lambda d: d["training"].update(optimizer={"name": "adam", "learning_rate": float("nan")}),
            "training.optimizer.learning_rate: Input should be a finite number (got nan)",
        ),
        (lambda d: d.update(datset={"name": "imdb"}), "unknown key 'datset' (did you mean 'dataset'?)"),
        (
            lambda d: d["variants"][0].update(epochs=3),  # README: a variant may override epochs
            "variants.0.epochs: unknown key 'epochs' (it belongs under training)",
        ),
        (lambda d: d["dataset"].update(name="cifar"), "dataset: unknown dataset 'cifar'"),
        (
            lambda d: d.update(resources={"num_gpus": -1}),
            "resources.num_gpus: Input should be greater than or equal to 0",
        ),
        (
            lambda d: d.update(resources={"num_cpus": 0.00001}),
            "resources.num_cpus: finer than Ray's smallest share, 0.0001 (got 1e-05)",
        ),
        (
            lambda d: d.update(resources={"num_gpus": 2}),
            "resources.num_gpus: a job trains on one GPU; more would be held and left idle: at most 1 (got 2)",
        ),
    ],
)
def test_bad_specs_are_refused_with_file_field_and_reason(tmp_path, edit, expected):
    path = l1_with(tmp_path, edit)
    errors = errors_of(path)
    assert any(e.startswith(f"{path}: ") and expected in e for e in errors), errors


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["training"].update(validation="held_out"),
            "training.validation: expected 'test' or a mapping with keys held_out (got 'held_out')",
        ),
        (
            lambda d: d["training"].update(validation={"held_out": 2}),
            "training.validation.held_out: Input should be less than 1 (got 2)",
        ),
        (
            lambda d: d["training"].update(validation={"held_out": 0.00001}),
            "training.validation.held_out: 1e-05 of imdb's 25,000 training examples holds out none; at least 4e-05",
        ),
        (
            lambda d: d["training"].update(optimizer="adam"),
            "training.optimizer: expected a mapping with keys name, learning_rate (got 'adam')",
        ),
        (lambda d: d["training"].update(metrics="accuracy"), "training.metrics: expected a list (got 'accuracy')"),
        (lambda d: d.update(claims=d["claims"][0]), "claims: expected a list, got a mapping"),
    ],
)
def test_a_wrongly_shaped_value_is_one_line_in_the_specs_words(tmp_path, edit, expected):
    """Not Pydantic's: no "valid tuple" for a YAML list, no class names, no union members."""
    path = l1_with(tmp_path, edit)
    assert errors_of(path) == [f"{path}: {expected}"]


def test_a_number_yaml_reads_as_text_is_taken_and_a_yes_is_not(tmp_path):
    """YAML 1.1 reads ``1e-3`` (no dot) as text and ``yes`` as a boolean: the first is the number it says."""
    text = (
        (SPECS / "l1.yaml")
        .read_text()
        .replace("  batch_size: 500\n", "  batch_size: 500\n  optimizer: {learning_rate: 1e-3}\n")
    )
    assert yaml.safe_load(text)["training"]["optimizer"]["learning_rate"] == "1e-3"
    (loaded,), errors = load_experiments([write(tmp_path, text, "text.yaml")])
    assert errors == [] and loaded.experiment.training.optimizer.learning_rate == 0.001
    seeds = write(tmp_path, (SPECS / "l1.yaml").read_text() + "seeds: yes\n")
    assert errors_of(seeds) == [
        f"{seeds}: seeds: expected a number; YAML reads unquoted true/false, yes/no and on/off as booleans (got true)"
    ]


def test_yaml_anchors_and_merge_keys_load_and_keys_after_a_merge_override_it(tmp_path):
    hidden = "      - {kind: dense, units: 128, activation: relu}\n"
    anchored = "      - &hidden {kind: dense, units: 64, activation: relu}\n      - {<<: *hidden, units: 128}\n"
    text = (SPECS / "l1.yaml").read_text().replace(2 * hidden, anchored)
    assert "<<: *hidden" in text
    (loaded,), errors = load_experiments([write(tmp_path, text, "merged.yaml")])
    assert errors == []
    assert [layer.units for layer in loaded.experiment.variants[0].layers] == [64, 128, 1]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(Title="x"), "Title: unknown key 'Title' (did you mean 'title'?)"),
        (
            lambda d: d["variants"][0].update(seed_printed={"Accuracy": "high"}),
            "variants.0.seed_printed.Accuracy: Input should be a valid number",
        ),
        (
            lambda d: d["training"].update(validation="Test"),
            "training.validation: expected 'test' or a mapping with keys held_out (got 'Test') (did you mean 'test'?)",
        ),
    ],
)
def test_keys_a_user_capitalised_are_named_as_written(tmp_path, edit, expected):
    path = l1_with(tmp_path, edit)
    errors = errors_of(path)
    assert len(errors) == 1 and errors[0].startswith(f"{path}: {expected}"), errors


def test_all_errors_of_a_file_are_reported_together(tmp_path):
    def edit(document):
        document["variants"][0]["layers"][0] = {"kind": "dense", "unit": 256}  # one mistake, one line
        document["variants"][1]["layers"][0]["activation"] = "rellu"
        document["claimz"] = []
        document["seedz"] = 2
        document["variants"][1]["layers"][0]["kernel_regularizer"] = {"l3": 0.1}

    errors = errors_of(l1_with(tmp_path, edit))
    assert len(errors) == 5, errors
    assert any("claimz: unknown key 'claimz' (did you mean 'claims'?)" in e for e in errors)
    assert any("seedz: unknown key 'seedz' (did you mean 'seeds'?)" in e for e in errors)
    assert any("kernel_regularizer.l3: unknown key 'l3'; expected one of: l1, l2" in e for e in errors)


def test_a_model_too_large_to_build_is_refused_before_keras(tmp_path):
    def edit(document):
        document["variants"][0]["layers"][0] = {"kind": "dense", "units": 65_536}
        document["variants"][0]["layers"][1] = {"kind": "dense", "units": 65_536}

    (error,) = errors_of(l1_with(tmp_path, edit))
    assert error.endswith("parameters; at most 100,000,000") and "variants.0.layers: " in error


def test_an_image_model_without_flatten_is_refused_before_it_trains(tmp_path):
    document = yaml.safe_load((SPECS / "batchnorm.yaml").read_text())
    for variant in document["variants"]:
        variant["layers"] = [layer for layer in variant["layers"] if layer["kind"] != "flatten"]
    path = tmp_path / "noflat.yaml"
    path.write_text(yaml.safe_dump(document))
    errors = errors_of(path)
    assert len(errors) == 2, errors  # one per variant
    assert all("layers: the model's output for one example has shape (28, 10), not one vector; " in e for e in errors)


def test_a_loss_claim_between_variants_without_penalties_is_valid(tmp_path):
    document = yaml.safe_load((SPECS / "overfitting.yaml").read_text())  # 3 against 6 layers, no L1/L2
    document["claims"] = [{"variant": "overfit", "metric": "loss", "higher_than": "basic"}]
    path = write(tmp_path, yaml.safe_dump(document))
    loaded, errors = load_experiments([path])
    assert errors == [] and len(loaded) == 1


def test_a_shared_gpu_needs_a_memory_cap(tmp_path):
    (error,) = errors_of(l1_with(tmp_path, lambda d: d.update(resources={"num_gpus": 0.25})))
    assert "resources: num_gpus 0.25 shares a GPU: give gpu_memory_mb too" in error


def test_only_a_shared_gpu_is_capped():
    from jobs.spec import Resources

    assert Resources(num_gpus=0.25, gpu_memory_mb=2048).memory_cap_mb == 2048
    assert Resources(num_gpus=1, gpu_memory_mb=2048).memory_cap_mb is None  # a whole GPU grows as needed
    assert Resources(num_gpus=0, gpu_memory_mb=2048).memory_cap_mb is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("name: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (
            "name: a\ntraining:\n  epochs: 4\n  epochs: 5\n",
            "not valid YAML: duplicate key 'epochs' at line 4, column 3",
        ),
    ],
)
def test_files_that_are_not_specs(tmp_path, text, expected):
    path = write(tmp_path, text)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}: ") and expected in error


def test_missing_file_and_empty_folder(tmp_path):
    assert errors_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]
    assert "holds no *.yaml" in errors_of(tmp_path)[0]


def test_a_suite_naming_a_missing_file_a_folder_or_a_suite(tmp_path):
    path = write(tmp_path, "suite: s\nexperiments: [gone.yaml, sub, suite.yaml]\n", "suite.yaml")
    (tmp_path / "sub").mkdir()
    assert errors_of(tmp_path) == [
        f"{path}: experiments.0: no such file: 'gone.yaml'",
        f"{path}: experiments.1: a folder, not a spec file: 'sub'",
        f"{path}: a suite, listed by another suite: a suite lists experiment files",
    ]


def test_a_pipe_or_yaml_nested_past_pythons_recursion_limit_is_one_error(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would wait for a writer forever
    assert errors_of(tmp_path / "pipe.yaml") == [f"{tmp_path / 'pipe.yaml'}: not a file; expected a YAML spec file"]
    deep = write(tmp_path, "title: " + "[" * 5000 + "]" * 5000 + "\n")
    assert errors_of(deep) == [f"{deep}: not valid YAML here: nested too deeply"]


def test_a_spec_named_twice_is_loaded_once(specs_dir):
    loaded, errors = load_experiments([specs_dir / "l1.yaml", specs_dir / "l1.yaml", specs_dir / "suite.yaml"])
    assert errors == []  # l1 first, as named first, then the rest of the suite, each once
    assert [item.experiment.name for item in loaded] == ["l1", *(name for name in SUITE if name != "l1")]


def test_two_files_defining_one_experiment(tmp_path, specs_dir):
    (tmp_path / "a.yaml").write_text((specs_dir / "l1.yaml").read_text())
    (tmp_path / "b.yaml").write_text((specs_dir / "l1.yaml").read_text())
    _, errors = load_experiments([tmp_path])
    assert [e.path for e in errors] == ["name"] and "also defined in" in errors[0].message


def test_the_schema_forbids_unknown_keys_for_editors():
    from jobs.spec import Experiment

    schema = Experiment.model_json_schema()
    assert schema["additionalProperties"] is False
    assert {"name", "dataset", "variants", "training", "claims"} <= set(schema["properties"])
    nested = schema["$defs"]  # every mapping inside a spec: layers, datasets, training, resources, claims
    assert {"Dense", "Dropout", "BatchNorm", "Imdb", "Training", "Variant", "Resources", "Claim"} <= set(nested)
    assert {name: model.get("additionalProperties") for name, model in nested.items()} == dict.fromkeys(nested, False)
    assert nested["Training"]["properties"]["epochs"]["type"] == "integer"  # numbers stay numbers for editors


def test_counts_in_messages_are_singular_for_one():
    assert (count(1, "epoch"), count(0, "epoch"), count(3, "seed")) == ("1 epoch", "0 epochs", "3 seeds")


def test_the_schema_holds_the_bounds_validate_checks():
    """An editor checking against ``regimen schema`` accepts the built-in specs and refuses the values
    ``regimen validate`` refuses, optional ones included (Pydantic wrote their bounds as "ge", which no
    JSON Schema validator reads)."""
    from jsonschema import Draft202012Validator

    from jobs.spec import Experiment

    validator = Draft202012Validator(Experiment.model_json_schema())
    document = yaml.safe_load((SPECS / "dropout.yaml").read_text())
    assert list(validator.iter_errors(document)) == []
    for path, value in (
        (("variants", 0, "training", "epochs"), 0),
        (("variants", 0, "training", "optimizer", "learning_rate"), -1),
        (("resources", "gpu_memory_mb"), 100),
    ):
        changed = copy.deepcopy(document)
        *parents, key = path
        place = changed
        for part in parents:
            place = place.setdefault(part, {}) if isinstance(part, str) else place[part]
        place[key] = value
        assert list(validator.iter_errors(changed)), path
