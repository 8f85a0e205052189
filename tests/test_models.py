"""Models built from the specs have exactly the seed's parameter counts and train on mock data."""

import numpy as np
import pytest
from helpers import load_specs

SEED_PARAMS = {
    ("overfitting", "basic"): 58_881,
    ("overfitting", "overfit"): 706_369,
    ("l1", "basic"): 29_569,
    ("l1", "l1"): 29_569,
    ("l2", "basic"): 29_569,
    ("l2", "l2"): 29_569,
    ("dropout", "basic"): 21_249,
    ("dropout", "dropout"): 21_249,
    ("batchnorm", "basic"): 376_650,
    ("batchnorm", "bn"): 382_026,
    ("fashion", "develop"): 284_234,
}


@pytest.fixture(scope="module")
def suite():
    return {experiment.name: experiment for experiment in load_specs()}


@pytest.mark.parametrize(("experiment", "variant"), list(SEED_PARAMS))
def test_parameter_counts_equal_the_seed(suite, experiment, variant):
    from jobs.models import build_model

    spec = suite[experiment]
    model = build_model(spec.dataset, spec.variant(variant).layers, spec.resolved_training(spec.variant(variant)))
    assert model.count_params() == SEED_PARAMS[(experiment, variant)]


def test_layers_map_to_the_keras_constructors(suite):
    import keras

    from jobs.models import build_model

    spec = suite["fashion"]
    model = build_model(spec.dataset, spec.variants[0].layers, spec.training)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Flatten",
        "Dense",
        "Dense",
        "Dense",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dropout",
        "Dense",
    ]
    assert isinstance(model.layers[1].kernel_regularizer, keras.regularizers.L1)
    assert isinstance(model.layers[2].kernel_regularizer, keras.regularizers.L2)
    assert model.layers[-1].activation.__name__ == "softmax"


@pytest.mark.parametrize("experiment", ["l1", "batchnorm"])
def test_one_training_step_on_synthetic_data(suite, experiment):
    from jobs.data import synthetic
    from jobs.models import build_model

    spec = suite[experiment]
    data = synthetic(spec.dataset, train=64, test=32)
    model = build_model(spec.dataset, spec.variants[-1].layers, spec.training)
    history = model.fit(
        data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0, validation_data=(data.x_test, data.y_test)
    )
    assert set(history.history) >= {"loss", "val_loss", "accuracy", "val_accuracy", f"val_{spec.training.metrics[-1]}"}
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(("experiment", "variant"), list(SEED_PARAMS))
def test_the_pure_parameter_count_equals_keras(suite, experiment, variant):
    from jobs.spec import parameter_count

    spec = suite[experiment]
    assert parameter_count(spec.dataset, spec.variant(variant).layers) == SEED_PARAMS[(experiment, variant)]


def test_mixed_bfloat16_computes_hidden_layers_in_bfloat16_and_keeps_float32_weights_and_output(suite):
    from jobs.data import synthetic
    from jobs.models import build_model

    spec = suite["fashion"]
    model = build_model(spec.dataset, spec.variants[0].layers, spec.training, precision="mixed_bfloat16")
    assert model.count_params() == SEED_PARAMS[("fashion", "develop")]
    assert [layer.compute_dtype for layer in model.layers] == ["bfloat16"] * 8 + ["float32"]
    assert {weight.dtype for weight in model.weights} == {"float32"}
    data = synthetic(spec.dataset, train=64, test=32)
    history = model.fit(data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(data.x_test, verbose=0).dtype == np.float32


def test_float32_is_the_default_precision(suite):
    from jobs.models import build_model

    spec = suite["l1"]
    model = build_model(spec.dataset, spec.variants[0].layers, spec.training)
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
