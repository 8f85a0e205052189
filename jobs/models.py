"""Model building: a pure function from spec to a compiled ``keras.Model``.

Every spec layer maps explicitly to one Keras constructor; the input comes from the dataset through
``keras.Input`` (no ``input_shape=`` on layers, deprecated in Keras 3). Keras is imported on first use,
so loading specs stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.spec import (
    FULL_PRECISION,
    ActivationLayer,
    BatchNorm,
    Dataset,
    Dense,
    Dropout,
    Flatten,
    Layer,
    Optimizer,
    Regularizer,
    Training,
    input_shape,
)

if TYPE_CHECKING:
    import keras


def _regularizer(spec: Regularizer | None):
    from keras import regularizers

    if spec is None:
        return None
    if spec.l1 and spec.l2:
        return regularizers.L1L2(l1=spec.l1, l2=spec.l2)
    return regularizers.L1(spec.l1) if spec.l1 else regularizers.L2(spec.l2)


def keras_layer(spec: Layer, dtype: str = "float32") -> keras.layers.Layer:
    """``dtype``: the layer's Keras dtype policy (``spec.Precision``)."""
    from keras import layers

    if isinstance(spec, Dense):
        return layers.Dense(
            spec.units,
            activation=spec.activation,
            kernel_regularizer=_regularizer(spec.kernel_regularizer),
            dtype=dtype,
        )
    if isinstance(spec, Dropout):
        return layers.Dropout(spec.rate, dtype=dtype)
    if isinstance(spec, BatchNorm):
        return layers.BatchNormalization(momentum=spec.momentum, epsilon=spec.epsilon, dtype=dtype)
    if isinstance(spec, ActivationLayer):
        return layers.Activation(spec.activation, dtype=dtype)
    if isinstance(spec, Flatten):
        return layers.Flatten(dtype=dtype)
    raise TypeError(f"no Keras constructor for layer {spec!r}")


def keras_optimizer(spec: Optimizer) -> keras.optimizers.Optimizer:
    from keras import optimizers

    constructor = {
        "adam": optimizers.Adam,
        "sgd": optimizers.SGD,
        "rmsprop": optimizers.RMSprop,
        "adamw": optimizers.AdamW,
    }[spec.name]
    return constructor() if spec.learning_rate is None else constructor(learning_rate=spec.learning_rate)


def build_model(
    dataset: Dataset,
    layers: tuple[Layer, ...],
    training: Training,
    name: str = "model",
    steps_per_execution: int = 1,
    jit_compile: bool | str = "auto",
    precision: str = FULL_PRECISION,
) -> keras.Model:
    """The variant's model, compiled with its optimizer, loss and metrics. ``steps_per_execution``: see
    ``execution.Execution``; ``jit_compile``: Keras' default, which leaves XLA off on TensorFlow's
    CPU (measured slower there, ``BENCHMARKS.md``) and on for JAX, which always compiles."""
    import keras

    # Mixed precision keeps the output layer in float32, as Keras' guide asks: the loss then sees float32
    # probabilities, not bfloat16 ones rounded to 3 significant digits.
    dtypes = [precision] * (len(layers) - 1) + ["float32"]
    model = keras.Sequential([keras.Input(shape=input_shape(dataset)), *map(keras_layer, layers, dtypes)], name=name)
    model.compile(
        optimizer=keras_optimizer(training.optimizer),
        loss=training.loss,
        metrics=list(training.metrics),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model
