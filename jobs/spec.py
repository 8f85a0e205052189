"""The experiment spec schema: what a YAML file under ``specs/`` may say, checked before anything runs.

Pure: no TensorFlow, no Ray, no file access. ``Experiment.problems()`` holds the checks that need more
than one field (output layer vs dataset and loss, claims naming real variants and metrics); the loader
runs them after Pydantic's own validation so every error carries its own field path.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from jobs.words import did_you_mean

Activation = Literal[
    "linear",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
    "elu",
    "selu",
    "gelu",
    "swish",
    "softplus",
    "leaky_relu",
]
#: Keras 3 backends a job can train on. TensorFlow is the default and the only one the base install has;
#: ``jax`` needs the ``jax`` extra (``jax-gpu`` on NVIDIA GPUs).
Backend = Literal["tensorflow", "jax"]
#: Keras dtype policies a job can train with. ``float32``, the default, is what the seed's scripts ran.
#: ``mixed_bfloat16`` computes layers in bfloat16 and keeps weights (and the output layer) in float32:
#: faster only where the hardware multiplies bfloat16 natively (AMX or AVX512-BF16 CPUs, GPUs from
#: NVIDIA's Ampere on, TPUs), and much slower elsewhere. bfloat16 has float32's range, so it needs no
#: loss scaling (which float16 would).
Precision = Literal["float32", "mixed_bfloat16"]
#: The seed's arithmetic: every other precision is reduced (job ids name it, reports flag it).
FULL_PRECISION: Precision = "float32"
Loss = Literal["binary_crossentropy", "sparse_categorical_crossentropy"]
Metric = Literal["accuracy", "binary_crossentropy", "sparse_categorical_crossentropy"]

#: Metrics (and the loss) for which a lower value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"loss", *get_args(Loss)})

#: Metrics that are fractions from 0 to 1, so that a threshold outside that range is a mistake (86 for 86%).
FRACTIONS = frozenset({"accuracy"})

MAX_UNITS = 65_536
#: A spec whose model is larger than this is refused before Keras tries to allocate it.
MAX_PARAMETERS = 100_000_000


def _not_a_boolean(value):
    if isinstance(value, bool):
        raise ValueError("expected a number; YAML reads unquoted true/false, yes/no and on/off as booleans")
    return value


#: A number in a spec. Pydantic would take a boolean for one (``epochs: true`` would be 1 epoch, and YAML
#: reads unquoted yes/no and on/off as booleans). Not Pydantic's strict mode, which would also refuse
#: ``1e-3``: YAML 1.1 reads a float without a dot as text, which Pydantic rightly takes for its number.
NOT_A_BOOLEAN = BeforeValidator(_not_a_boolean)
Number = Annotated[float, NOT_A_BOOLEAN]
Whole = Annotated[int, NOT_A_BOOLEAN]
# Bounds of optional numbers go before NOT_A_BOOLEAN: after it, or on the field, Pydantic's JSON Schema
# writes them as "ge"/"le", which editors do not check.
Epochs = Annotated[int, Field(ge=1, le=100_000), NOT_A_BOOLEAN]
BatchSize = Annotated[int, Field(ge=1, le=1_000_000), NOT_A_BOOLEAN]


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors (the loader adds the closest valid key)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---------------------------------------------------------------- layers


class Regularizer(Strict):
    """A kernel penalty: ``{l1: 0.001}``, ``{l2: 0.001}`` or both (Keras ``L1L2``)."""

    l1: Number = Field(0.0, ge=0)
    l2: Number = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _not_empty(self) -> Regularizer:
        if self.l1 == 0 and self.l2 == 0:
            raise ValueError("a kernel_regularizer needs l1 > 0, l2 > 0 or both")
        return self


class Dense(Strict):
    kind: Literal["dense"]
    units: Whole = Field(ge=1, le=MAX_UNITS)
    activation: Activation = Field("linear", description="Keras' default: no activation")
    kernel_regularizer: Regularizer | None = None


class Dropout(Strict):
    kind: Literal["dropout"]
    rate: Number = Field(ge=0, lt=1, description="fraction of units dropped while training, in [0, 1)")


class BatchNorm(Strict):
    kind: Literal["batch_norm"]
    momentum: Number = Field(0.99, gt=0, lt=1)
    epsilon: Number = Field(0.001, gt=0)


class ActivationLayer(Strict):
    kind: Literal["activation"]
    activation: Activation


class Flatten(Strict):
    kind: Literal["flatten"]


Layer = Annotated[Dense | Dropout | BatchNorm | ActivationLayer | Flatten, Field(discriminator="kind")]

# ---------------------------------------------------------------- data


class Imdb(Strict):
    """IMDB reviews as multi-hot vectors over the ``num_words`` most frequent words (the seed: 100)."""

    name: Literal["imdb"]
    num_words: Whole = Field(10000, ge=4, le=100_000, description="indices >= num_words become 2 (OOV)")


class Mnist(Strict):
    name: Literal["mnist"]


class FashionMnist(Strict):
    name: Literal["fashion_mnist"]


Dataset = Annotated[Imdb | Mnist | FashionMnist, Field(discriminator="name")]
#: The pixels of one MNIST or Fashion-MNIST image
IMAGE_SHAPE = (28, 28)
#: (training, test) examples of each dataset, as Keras loads it
ROWS = {"imdb": (25_000, 25_000), "mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000)}
DATASET_NAMES = tuple(ROWS)


def input_shape(dataset: Imdb | Mnist | FashionMnist) -> tuple[int, ...]:
    return (dataset.num_words,) if isinstance(dataset, Imdb) else IMAGE_SHAPE


def shape_and_parameters(
    dataset: Imdb | Mnist | FashionMnist, layers: tuple[Layer, ...]
) -> tuple[tuple[int, ...], int]:
    """(the output shape of one example, what Keras' ``count_params()`` gives) for these layers on this
    dataset, without building the model."""
    shape, total = input_shape(dataset), 0
    for layer in layers:
        if isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            total += shape[-1] * layer.units + layer.units
            shape = (*shape[:-1], layer.units)
        elif isinstance(layer, BatchNorm):
            total += 4 * shape[-1]  # gamma, beta, moving mean and variance
    return shape, total


def parameter_count(dataset: Imdb | Mnist | FashionMnist, layers: tuple[Layer, ...]) -> int:
    return shape_and_parameters(dataset, layers)[1]


def penalties(layers: tuple[Layer, ...]) -> tuple:
    """The kernel regularizers of the dense layers that have one: what a model adds to its loss beyond the
    data's."""
    return tuple(layer.kernel_regularizer for layer in layers if isinstance(layer, Dense) and layer.kernel_regularizer)


def expected_output(dataset: Imdb | Mnist | FashionMnist) -> tuple[int, str, str]:
    """(units, activation, loss) the last layer and loss must have for ``dataset``."""
    if isinstance(dataset, Imdb):
        return 1, "sigmoid", "binary_crossentropy"
    return 10, "softmax", "sparse_categorical_crossentropy"


# ---------------------------------------------------------------- training


class Optimizer(Strict):
    name: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"
    learning_rate: Annotated[float, Field(gt=0), NOT_A_BOOLEAN] | None = Field(
        None, description="None: the optimizer's Keras default"
    )


class HeldOut(Strict):
    """Validate on a held-out fraction of the training set instead of the test set."""

    held_out: Number = Field(gt=0, lt=1)

    def rows(self, train_total: int) -> int:
        """The examples held out of a training set of ``train_total``: its last ones."""
        return int(train_total * self.held_out)


class Training(Strict):
    epochs: Epochs
    batch_size: BatchSize
    optimizer: Optimizer = Optimizer()
    loss: Loss
    metrics: tuple[Metric, ...] = ("accuracy",)
    validation: Literal["test"] | HeldOut = Field(
        "test", description="'test': the test set every epoch, as the seed's validation_data does"
    )


class TrainingOverride(Strict):
    """What one variant changes of its experiment's training settings."""

    epochs: Epochs | None = None
    batch_size: BatchSize | None = None
    optimizer: Optimizer | None = None


# ---------------------------------------------------------------- experiment

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: :data:`NAME_PATTERN` in words, for the error that refuses a name
NAME_RULE = "lowercase letters, digits, _ and -, starting with a letter or digit, at most 64 characters"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="lowercase, digits, _ and -")]


class Variant(Strict):
    name: Name
    description: str = ""
    layers: tuple[Layer, ...] = Field(min_length=1)
    training: TrainingOverride = TrainingOverride()
    seed_printed: dict[str, Number] = Field(
        default_factory=dict,
        description="test metrics the seed document printed for this model, shown beside ours",
    )
    seed_printed_as: dict[str, str] = Field(
        default_factory=dict,
        description="the label the seed printed a metric under, where that label was wrong",
    )


#: the finest fraction of a CPU or GPU a Ray task can ask for
RAY_SMALLEST_SHARE = 0.0001


class Resources(Strict):
    num_cpus: Number = Field(1, gt=0)
    num_gpus: Number = Field(0, ge=0, description="fractions share a GPU; see gpu_memory_mb")
    gpu_memory_mb: Annotated[int, Field(ge=256), NOT_A_BOOLEAN] | None = Field(
        None, description="cap on the job's GPU memory; needed with a fractional num_gpus"
    )

    @field_validator("num_cpus", "num_gpus")
    @classmethod
    def _ray_can_schedule(cls, value: float, info) -> float:
        """Ray's own limit, which it would otherwise raise mid-run: shares of 0.0001 at the finest; and one
        GPU at most, the one a job trains on (Keras with no distribution strategy)."""
        if 0 < value < RAY_SMALLEST_SHARE:
            raise ValueError(f"finer than Ray's smallest share, {RAY_SMALLEST_SHARE:g}")
        if info.field_name == "num_gpus" and value > 1:
            raise ValueError("a job trains on one GPU; more would be held and left idle: at most 1")
        return value

    @property
    def memory_cap_mb(self) -> int | None:
        """The GPU memory the job's backend is capped at: ``gpu_memory_mb`` for a share of a GPU; None for a
        whole GPU, whose memory grows as the job needs it, and for none."""
        return self.gpu_memory_mb if 0 < self.num_gpus < 1 else None

    @model_validator(mode="after")
    def _shared_gpu_is_capped(self) -> Resources:
        if 0 < self.num_gpus < 1 and self.gpu_memory_mb is None:
            raise ValueError(
                f"num_gpus {self.num_gpus:g} shares a GPU: give gpu_memory_mb too, or the job takes the whole GPU"
            )
        return self


class Claim(Strict):
    """One comparison the experiment makes, with exactly one of the four relations."""

    variant: Name
    metric: str = Field(description="'loss' or one of the training metrics")
    lower_than: str | None = None
    higher_than: str | None = None
    at_least: Number | None = None
    at_most: Number | None = None

    @model_validator(mode="after")
    def _one_relation(self) -> Claim:
        given = [k for k in ("lower_than", "higher_than", "at_least", "at_most") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a claim needs exactly one of lower_than, higher_than (a variant) or at_least, at_most "
                f"(a number); got {', '.join(given) or 'none'}"
            )
        return self

    @property
    def other(self) -> str | None:
        return self.lower_than or self.higher_than


#: A cross-field error of an experiment: (the path of its field, what is wrong)
Problem = tuple[tuple[str | int, ...], str]


class Experiment(Strict):
    name: Name
    title: str
    question: str
    dataset: Dataset
    training: Training
    variants: tuple[Variant, ...] = Field(min_length=1)
    seeds: Whole = Field(1, ge=1, le=1000, description="each variant is trained with seeds 0..seeds-1")
    resources: Resources = Resources()
    backend: Backend = Field("tensorflow", description="Keras 3 backend every job of this experiment trains on")
    precision: Precision = Field(
        FULL_PRECISION, description="Keras dtype policy every job of this experiment trains with"
    )
    headline_metric: str = Field(description="'loss' or one of the training metrics")
    claims: tuple[Claim, ...] = ()

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def resolved_training(self, variant: Variant) -> Training:
        changes = variant.training.model_dump(exclude_none=True)
        return self.training.model_copy(update={k: getattr(variant.training, k) for k in changes})

    def metric_names(self) -> tuple[str, ...]:
        return ("loss", *self.training.metrics)

    def problems(self) -> list[Problem]:
        """Cross-field errors as (field path, message); empty when the experiment is consistent."""
        found = self._training_problems()
        names = [v.name for v in self.variants]
        for i, variant in enumerate(self.variants):
            if names.index(variant.name) != i:
                found.append((("variants", i, "name"), f"duplicate variant name '{variant.name}'"))
            found += [(("variants", i, *where), why) for where, why in self._variant_problems(variant)]
        if self.headline_metric not in self.metric_names():
            found.append((("headline_metric",), self._unknown_metric(self.headline_metric)))
        for i, claim in enumerate(self.claims):
            found += [(("claims", i, *where), why) for where, why in self._claim_problems(claim, names)]
        return found

    def _training_problems(self) -> list[Problem]:
        found: list[Problem] = []
        loss, data = expected_output(self.dataset)[2], self.dataset.name
        if self.training.loss != loss:
            found.append((("training", "loss"), f"{data} needs loss '{loss}', got '{self.training.loss}'"))
        for i, metric in enumerate(self.training.metrics):
            if metric.endswith("crossentropy") and metric != loss:  # Keras would fail at the first batch
                found.append((("training", "metrics", i), f"{data} takes the cross-entropy '{loss}', not '{metric}'"))
            if self.training.metrics.index(metric) != i:
                found.append((("training", "metrics", i), f"'{metric}' is listed twice"))
        validation = self.training.validation
        if isinstance(validation, HeldOut) and validation.rows(ROWS[data][0]) == 0:
            found.append(
                (
                    ("training", "validation", "held_out"),
                    f"{validation.held_out:g} of {data}'s {ROWS[data][0]:,} training examples holds out none; "
                    f"at least {1 / ROWS[data][0]:g}",
                )
            )
        return found

    def _variant_problems(self, variant: Variant) -> list[Problem]:
        """As paths within the variant."""
        found: list[Problem] = []
        units, activation, loss = expected_output(self.dataset)
        shape, params = shape_and_parameters(self.dataset, variant.layers)
        if params > MAX_PARAMETERS:
            found.append((("layers",), f"{params:,} parameters; at most {MAX_PARAMETERS:,}"))
        if len(shape) != 1:  # Dense acts on the last axis only: images need flattening first
            found.append(
                (
                    ("layers",),
                    f"the model's output for one example has shape {shape}, not one vector; "
                    "put a flatten layer before the first dense layer",
                )
            )
        last = variant.layers[-1]
        if not (isinstance(last, Dense) and last.units == units and last.activation == activation):
            got = f"dense({last.units}, {last.activation})" if isinstance(last, Dense) else last.kind
            found.append(
                (
                    ("layers", len(variant.layers) - 1),
                    f"the output layer on {self.dataset.name} with {loss} must be dense({units}, {activation}); "
                    f"got {got}",
                )
            )
        for key in {**variant.seed_printed, **variant.seed_printed_as}:
            if key not in self.metric_names():
                found.append((("seed_printed", key), self._unknown_metric(key)))
        return found

    def _claim_problems(self, claim: Claim, names: list[str]) -> list[Problem]:
        """As paths within the claim."""
        found: list[Problem] = []
        for field in ("variant", "lower_than", "higher_than"):
            name = getattr(claim, field)
            if name is not None and name not in names:
                found.append(
                    ((field,), f"no variant named '{name}'{did_you_mean(name, names)}; variants: {', '.join(names)}")
                )
        if claim.other == claim.variant:
            found.append(((), "a claim compares a variant with itself"))
        loss = expected_output(self.dataset)[2]
        if claim.metric not in self.metric_names():
            found.append((("metric",), self._unknown_metric(claim.metric)))
        elif claim.metric == "loss" and claim.other and (penalised := self._penalised(claim.variant, claim.other)):
            found.append(
                (
                    ("metric",),
                    f"'loss' includes the L1/L2 penalty of {' and '.join(map(repr, penalised))}, so the penalty "
                    f"could decide the claim; compare '{loss}'"
                    + ("" if loss in self.training.metrics else " (list it in training.metrics)"),
                )
            )
        for field in ("at_least", "at_most"):
            bound = getattr(claim, field)
            if claim.metric in FRACTIONS and bound is not None and not 0 <= bound <= 1:
                always = (field == "at_most") == (bound > 1)  # at most 1.5, at least -0.1: nothing to test
                why = f"{claim.metric} is a fraction from 0 to 1, so {field} {bound:g} "
                why += "always holds" if always else "can never be met"
                percent = f" (for {bound:g}% write {bound / 100:g})" if bound > 1 else ""
                found.append(((field,), why + percent))
        return found

    def _penalised(self, *names: str) -> list[str]:
        """Those of the variants ``names`` whose loss adds an L1/L2 penalty."""
        by_name = {v.name: v for v in self.variants}
        return [name for name in names if name in by_name and penalties(by_name[name].layers)]

    def _unknown_metric(self, name: str) -> str:
        options = self.metric_names()
        return f"unknown metric '{name}'{did_you_mean(name, options)}; expected one of: {', '.join(options)}"


class Suite(Strict):
    """A suite file: the experiment files to run together, in order, relative to the suite file."""

    suite: Name
    experiments: tuple[str, ...] = Field(min_length=1)
