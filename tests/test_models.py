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
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [256, 128, 256, 64, 10]
    assert [layer.activation.__name__ for layer in dense] == ["relu", "relu", "relu", "linear", "softmax"]
    first, second = dense[0].kernel_regularizer, dense[1].kernel_regularizer
    assert isinstance(first, keras.regularizers.L1) and float(first.l1) == pytest.approx(0.001)
    assert isinstance(second, keras.regularizers.L2) and float(second.l2) == pytest.approx(0.001)
    assert [layer.kernel_regularizer for layer in dense[2:]] == [None, None, None]
    norm, activation, dropout = model.layers[5:8]
    assert (norm.momentum, norm.epsilon) == (0.99, 0.001)  # Keras' defaults, as the seed's BatchNormalization()
    assert activation.activation.__name__ == "relu" and dropout.rate == 0.2
    assert type(model.optimizer) is keras.optimizers.Adam  # the seed's optimizer='adam', with its defaults
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    from jobs.models import keras_layer, keras_optimizer
    from jobs.spec import BatchNorm, Optimizer

    norm = keras_layer(BatchNorm(kind="batch_norm", momentum=0.9, epsilon=0.01))  # settings other than Keras' own
    assert (norm.momentum, norm.epsilon) == (0.9, 0.01)
    sgd = keras_optimizer(Optimizer(name="sgd", learning_rate=0.05))
    assert type(sgd) is keras.optimizers.SGD and float(sgd.learning_rate) == pytest.approx(0.05)


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
