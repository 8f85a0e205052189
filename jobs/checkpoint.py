"""A job's checkpoint: one file holding everything a resumed fit needs to go on as if never stopped.

The model's weights with the optimizer's state, the number of epochs finished and the seconds they took,
the job's log so far (so that a resumed job's log begins with its first attempt's lines), the state of
every random-number generator the layers draw from (dropout's masks), and numpy's (Keras
shuffles each epoch from it on JAX). Keras' ``BackupAndRestore`` keeps the weights and the epoch in two
files written one after the other, so a kill between the two pairs one epoch's weights with another's
count (an epoch trained twice or skipped, silently), and a kill while it writes its metadata leaves a
file that fails every later run; nor does it keep the random state, so a resumed dropout model drew the
masks of its first epochs again and ended elsewhere than an uninterrupted one. Here it all is one zip,
written whole or not at all by the store (a rename on disk, one PUT in a bucket).
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTS, STATE = "model.weights.h5", "state.json"


def random_state_variables(model) -> list:
    """The layers' random-generator states, in the model's order: its variables that are not weights."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


@dataclass(frozen=True)
class Restored:
    epochs_done: int
    fit_seconds: float  # the training time of those epochs, over every attempt that trained them
    numpy_random_state: list | None = None  # after those epochs; see continue_numpy_random
    log: tuple[str, ...] = ()  # the job's log up to those epochs, over every attempt

    def continue_numpy_random(self) -> None:
        """Put numpy's random state back where those epochs left it. Called as the fit begins, after Keras
        built the model: on JAX that build draws a shuffle of its own, which the first attempt drew before
        its first epoch, not before the resumed one."""
        if self.numpy_random_state is not None:
            name, keys, position, has_gauss, gauss = self.numpy_random_state
            np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))


def dump(model, epochs_done: int, fit_seconds: float, log: list[str]) -> bytes:
    """The checkpoint of ``model`` after ``epochs_done`` epochs, which took ``fit_seconds`` to train and
    wrote ``log``."""
    random_states = [variable.numpy().tolist() for variable in random_state_variables(model)]
    name, keys, position, has_gauss, gauss = np.random.get_state()
    numpy_state = [name, keys.tolist(), position, has_gauss, gauss]
    with tempfile.TemporaryDirectory(prefix="regimen-checkpoint-") as folder:
        weights = Path(folder) / WEIGHTS
        model.save_weights(weights)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            archive.write(weights, WEIGHTS)
            state = {"epochs_done": epochs_done, "fit_seconds": fit_seconds, "random_states": random_states}
            state |= {"numpy_random_state": numpy_state, "log": log}
            archive.writestr(STATE, json.dumps(state))
    return out.getvalue()


def _state(file) -> dict:
    """The checkpoint's state, without its weights; ``file``: seekable and binary."""
    with zipfile.ZipFile(file) as archive:
        return json.loads(archive.read(STATE))


def log_of(checkpoint: bytes) -> tuple[str, ...]:
    """The job's log up to the checkpoint's epochs, read without a model (or an empty one where the
    checkpoint cannot be read)."""
    try:
        return tuple(_state(io.BytesIO(checkpoint)).get("log", ()))
    except (zipfile.BadZipFile, KeyError, ValueError):
        return ()


def epochs_done_of(file) -> int | None:
    """The epochs a checkpoint holds, read from its state alone (``file``: a seekable binary file, of which
    a bucket sends only the parts read); None where it cannot be read."""
    try:
        return int(_state(file)["epochs_done"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError):
        return None


def restore(model, checkpoint: bytes) -> Restored:
    """Load ``checkpoint`` into ``model`` (compiled, not yet trained); returns what it had trained.
    Raises on a checkpoint that does not fit the model or cannot be read; the model may then be half
    loaded, so the caller builds a fresh one."""
    with zipfile.ZipFile(io.BytesIO(checkpoint)) as archive, tempfile.TemporaryDirectory() as folder:
        state = json.loads(archive.read(STATE))
        weights = archive.extract(WEIGHTS, folder)
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be loaded into
        model.load_weights(weights)
    variables, saved = random_state_variables(model), state["random_states"]
    if len(variables) != len(saved):
        raise ValueError(f"the checkpoint has {len(saved)} random states, the model {len(variables)}")
    for variable, value in zip(variables, saved, strict=True):
        variable.assign(value)
    epochs_done, fit_seconds = int(state["epochs_done"]), float(state["fit_seconds"])
    return Restored(epochs_done, fit_seconds, state["numpy_random_state"], tuple(state.get("log", ())))
