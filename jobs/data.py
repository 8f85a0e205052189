"""Datasets: find the canonical files, read them without network or pickle, preprocess as the seed did.

Sources, in order: a data folder (``--data-dir`` or ``$REGIMEN_DATA_DIR``) holding ``mnist.npz``,
``imdb.npz`` and ``fashion-mnist/*-ubyte.gz``; Debian's ``dataset-fashion-mnist`` package; Keras' own
cache (``$KERAS_HOME/datasets``); Keras' download. :func:`synthetic` makes generated arrays with the
same shapes, dtypes and class balance, for tests and demos.

Reading and preprocessing are pure functions of file bytes; only :func:`locate` touches the network.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from jobs.spec import IMAGE_SHAPE, ROWS, Dataset, Imdb
from jobs.words import first_line

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
#: Keras' imdb.load_data defaults, kept so that our arrays equal Keras' own.
IMDB_SHUFFLE_SEED, IMDB_START_CHAR, IMDB_OOV_CHAR, IMDB_INDEX_FROM = 113, 1, 2, 3
STAGE_HINT = (
    "put the canonical files in a folder DIR (`regimen data --data-dir DIR` lists which files go where; "
    "`make data DIR=...` stages the ones that can be had offline) and pass --data-dir DIR, or run `make demo` "
    "for a run on SYNTHETIC data"
)


class DataUnavailable(Exception):
    """A dataset that could not be found or downloaded; the message lists the places searched."""

    def __init__(self, name: str, searched: list[str], reason: str = ""):
        why = f" ({reason})" if reason else ""
        super().__init__(f"dataset '{name}' not found{why}; searched: {'; '.join(searched)}. To fix: {STAGE_HINT}")


class DataCorrupt(Exception):
    """A dataset file that exists but cannot be read as the canonical format."""


@dataclass(frozen=True)
class Arrays:
    """A dataset as it travels to its jobs: the inputs as stored, labels as the loss expects them. Real
    images stay their uint8 pixels (``pixels``): a quarter of float32's bytes in Ray's object store, which
    every job on a node maps. :meth:`for_fit` gives what ``model.fit`` takes."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = field(compare=False)
    synthetic: bool = False
    pixels: bool = False  # inputs are uint8 pixels, scaled to [0, 1] by for_fit

    def for_fit(self) -> Arrays:
        """The float32 inputs the seed fed to ``fit``: pixels / 255, the same values as its ``x / 255.0``
        cast to float32 (tested on every pixel value); these same arrays where the inputs are float32
        already."""
        if not self.pixels:
            return self
        return replace(self, x_train=scaled(self.x_train), x_test=scaled(self.x_test), pixels=False)

    def describe(self) -> dict:
        return {
            "source": self.source,
            "synthetic": self.synthetic,
            "train": len(self.x_train),
            "test": len(self.x_test),
        }


def keras_cache() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def default_data_dir() -> Path | None:
    value = os.environ.get("REGIMEN_DATA_DIR")
    return Path(value) if value else None


def canonical_files(name: str) -> list[str]:
    """The files of ``name`` relative to a data folder (the Keras cache layout)."""
    if name == "fashion_mnist":
        return [f"fashion-mnist/{f}" for f in FASHION_FILES]
    return [f"{name}.npz"]


def location(files: list[Path]) -> Path:
    """Where a dataset's files are, as messages name it: the folder of a dataset of several files, the file
    of a dataset of one."""
    return files[0].parent if len(files) > 1 else files[0]


def candidates(name: str, data_dir: Path | None) -> list[list[Path]]:
    """Every place the dataset's files may be, as the list of its files there, in the order searched."""
    folders = [data_dir] if data_dir else []
    places = [[folder / f for f in canonical_files(name)] for folder in folders]
    if name == "fashion_mnist":
        places.append([DEBIAN_FASHION_MNIST / f for f in FASHION_FILES])
    places.append([keras_cache() / f for f in canonical_files(name)])
    return places


def find_local(name: str, data_dir: Path | None) -> tuple[list[Path] | None, list[str]]:
    """The dataset's files in the first place that has them all, and every place looked at."""
    searched = []
    for files in candidates(name, data_dir):
        place = str(location(files))
        # os.path's checks: False, not an exception, where a folder on the way cannot be entered
        lacking = [f.name for f in files if not (os.path.isfile(f) and os.path.getsize(f) > 0)]
        if not lacking:
            return files, [*searched, place]
        partial = len(lacking) < len(files)  # a folder with some of the files: say which are not there
        searched.append(f"{place} (without {', '.join(lacking)})" if partial else place)
    return None, searched


def check_readable(name: str, files: list[Path]) -> None:
    """:class:`DataCorrupt` unless the files hold what a run reads from them: arrays of the right shapes
    and labels (``regimen data``'s check; IMDB's reviews are not turned into multi-hot rows for it)."""
    source = str(location(files))
    if name == "imdb":
        imdb_load_data(read_npz(files[0]), IMDB_OOV_CHAR + 1, source)
    else:
        preprocess_images(*read_images(name, files), source=source)


def locate(name: str, data_dir: Path | None = None, download: bool = True) -> list[Path]:
    """The files of dataset ``name``, downloading them through Keras when no local copy exists."""
    files, searched = find_local(name, data_dir)
    if files:
        return files
    if not download:
        raise DataUnavailable(name, searched)
    searched.append(f"download from {KERAS_ORIGIN}")
    try:
        from keras.utils import get_file

        subdir = "datasets/fashion-mnist" if name == "fashion_mnist" else "datasets"
        return [
            Path(get_file(Path(f).name, origin=KERAS_ORIGIN + Path(f).name, cache_subdir=subdir))
            for f in canonical_files(name)
        ]
    except Exception as error:  # urllib/HTTP/OS errors all mean the same thing to the user
        reason = first_line(str(error), 160) or type(error).__name__
        raise DataUnavailable(name, searched, reason) from None


# ---------------------------------------------------------------- reading canonical files


class _ListsOnlyUnpickler(pickle.Unpickler):
    """Reads IMDB's ragged object arrays (lists of ints) and refuses every other global."""

    allowed = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    def find_class(self, module, name):
        if (module, name) in self.allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """An ``.npz`` as a dict; object arrays go through a restricted unpickler, never ``allow_pickle``."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                buffer = io.BytesIO(archive.read(member))
                try:
                    arrays[member[:-4]] = np.lib.format.read_array(buffer, allow_pickle=False)
                except ValueError:
                    buffer.seek(0)
                    major, _ = np.lib.format.read_magic(buffer)
                    read_header = (
                        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    )
                    read_header(buffer)
                    arrays[member[:-4]] = _ListsOnlyUnpickler(buffer).load()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
        raise DataCorrupt(f"{path}: not a readable .npz file ({error})") from None
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise DataCorrupt(f"{path}: missing arrays {', '.join(sorted(missing))}")
    return arrays


def read_idx_gz(path: Path, header_bytes: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=header_bytes)
    except (OSError, EOFError, ValueError) as error:
        raise DataCorrupt(f"{path}: not a readable idx .gz file ({error})") from None


# ---------------------------------------------------------------- preprocessing (pure)


def multi_hot(sequences: list | np.ndarray, dimension: int) -> np.ndarray:
    """The seed's ``sequences_shaping``, vectorised: row i has 1.0 at every index in sequences[i]."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    rows = np.repeat(np.arange(len(sequences)), lengths)
    cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if len(rows) else rows
    out = np.zeros((len(sequences), dimension), dtype=np.float32)
    out[rows, cols] = 1.0
    return out


def imdb_words(sequences: np.ndarray, num_words: int) -> list[np.ndarray]:
    """Keras' index shift and OOV mapping: start char 1, indices + 3, every index >= num_words -> 2."""
    out = []
    for seq in sequences:
        words = np.concatenate(([IMDB_START_CHAR], np.asarray(seq, dtype=np.int64) + IMDB_INDEX_FROM))
        out.append(np.where(words < num_words, words, IMDB_OOV_CHAR))
    return out


def imdb_load_data(raw: dict[str, np.ndarray], num_words: int, source: str) -> dict[str, tuple]:
    """What Keras' ``imdb.load_data(num_words=...)`` returns, from the archive's arrays: each part shuffled
    (one RNG, train then test), word indices shifted, rare words mapped to the OOV index."""
    rng = np.random.RandomState(IMDB_SHUFFLE_SEED)
    parts = {}
    for part in ("train", "test"):
        x, y = raw[f"x_{part}"], np.asarray(raw[f"y_{part}"])
        if len(x) != len(y):
            raise DataCorrupt(f"{source}: x_{part} has {len(x)} rows but y_{part} has {len(y)}")
        check_labels(y, 2, f"{source}: y_{part}")
        order = np.arange(len(x))
        rng.shuffle(order)
        try:
            parts[part] = (imdb_words(x[order], num_words), y[order])
        except (TypeError, ValueError) as error:
            raise DataCorrupt(f"{source}: x_{part} is not a list of word-index lists ({error})") from None
    return parts


def check_labels(labels: np.ndarray, classes: int, what: str) -> None:
    """:class:`DataCorrupt` unless ``labels`` are class indices 0 to ``classes`` - 1: Keras would fail on
    others only inside its first training step, with a message that does not name the file."""
    if not np.issubdtype(labels.dtype, np.number):
        raise DataCorrupt(f"{what} are {labels.dtype}; expected class indices 0 to {classes - 1}")
    if labels.size == 0:
        return
    whole = np.issubdtype(labels.dtype, np.integer) or bool(np.all(np.mod(labels, 1) == 0))
    if not whole or labels.min() < 0 or labels.max() >= classes:
        raise DataCorrupt(
            f"{what} must be class indices 0 to {classes - 1}; found values from {labels.min()} to {labels.max()}"
        )


def preprocess_imdb(raw: dict[str, np.ndarray], num_words: int, source: str) -> Arrays:
    split = {
        part: (
            multi_hot(words, num_words),
            labels.astype(np.float32).reshape(-1, 1),  # (N, 1): Keras 3 binary_crossentropy metric
        )
        for part, (words, labels) in imdb_load_data(raw, num_words, source).items()
    }
    return Arrays(*split["train"], *split["test"], source=source)


def preprocess_images(x_train, y_train, x_test, y_test, source: str) -> Arrays:
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or len(x) != len(y):
            raise DataCorrupt(
                f"{source}: {name} images have shape {x.shape} and {len(y)} labels; "
                f"expected (N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}) with N labels"
            )
        if x.dtype != np.uint8:
            raise DataCorrupt(f"{source}: {name} images are {x.dtype}; expected uint8 pixels")
        check_labels(y, 10, f"{source}: {name} labels")
    return Arrays(
        x_train,
        y_train.astype(np.int64),
        x_test,
        y_test.astype(np.int64),
        source=source,
        pixels=True,
    )


def scaled(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1]."""
    return (pixels / np.float32(255)).astype(np.float32, copy=False)


def read_images(name: str, files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What Keras' ``mnist.load_data()`` / ``fashion_mnist.load_data()`` return (uint8 images, labels),
    flattened to x_train, y_train, x_test, y_test."""
    if name == "mnist":
        raw = read_npz(files[0])
        return raw["x_train"], raw["y_train"], raw["x_test"], raw["y_test"]
    source = files[0].parent
    by_name = {f.name: f for f in files}
    labels, images = {}, {}
    for part in ("train", "t10k"):
        labels[part] = read_idx_gz(by_name[f"{part}-labels-idx1-ubyte.gz"], 8)
        pixels = read_idx_gz(by_name[f"{part}-images-idx3-ubyte.gz"], 16)
        if pixels.size != len(labels[part]) * math.prod(IMAGE_SHAPE):
            raise DataCorrupt(
                f"{source}: {part} images hold {pixels.size} bytes; expected {len(labels[part])} x "
                f"{IMAGE_SHAPE[0]} x {IMAGE_SHAPE[1]}"
            )
        images[part] = pixels.reshape(-1, *IMAGE_SHAPE)
    return images["train"], labels["train"], images["t10k"], labels["t10k"]


def read_dataset(dataset: Dataset, files: list[Path]) -> Arrays:
    """Canonical files -> preprocessed arrays."""
    source = str(location(files))
    if isinstance(dataset, Imdb):
        return preprocess_imdb(read_npz(files[0]), dataset.num_words, source)
    return preprocess_images(*read_images(dataset.name, files), source=source)


# ---------------------------------------------------------------- synthetic


def synthetic(dataset: Dataset, train: int | None = None, test: int | None = None) -> Arrays:
    """Generated data with the real dataset's shapes and exact class balance, in the dtypes ``fit`` gets
    (images as float32 in [0, 1], where real ones travel as uint8 pixels and are scaled in the job):
    learnable, with some examples drawn from another class than their label, so that a large model can
    overfit. The same data every time."""
    rng = np.random.default_rng(0)
    train, test = train or ROWS[dataset.name][0], test or ROWS[dataset.name][1]
    if isinstance(dataset, Imdb):
        return _synthetic_imdb(rng, dataset.num_words, train, test)
    base = rng.random(IMAGE_SHAPE, dtype=np.float32)
    prototypes = np.clip(base + rng.normal(0, 0.25, (10, *IMAGE_SHAPE)).astype(np.float32), 0, 1)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % 10)
        drawn_from = _mislabel(rng, y, classes=10)
        noise = rng.standard_normal((n, *IMAGE_SHAPE), dtype=np.float32) * np.float32(0.6)
        return np.clip(prototypes[drawn_from] + noise, 0, 1).astype(np.float32), y.astype(np.int64)

    return Arrays(*images(train), *images(test), source=f"SYNTHETIC {dataset.name}", synthetic=True)


def _mislabel(rng: np.random.Generator, labels: np.ndarray, classes: int, fraction: float = 0.1) -> np.ndarray:
    """The class each example's inputs are drawn from: its label, except for ``fraction`` of them."""
    drawn_from = labels.copy()
    wrong = rng.random(len(labels)) < fraction
    drawn_from[wrong] = rng.integers(0, classes, int(wrong.sum()))
    return drawn_from


def _synthetic_imdb(rng: np.random.Generator, num_words: int, n_train: int, n_test: int) -> Arrays:
    frequency = np.clip(0.9 / np.arange(1, num_words + 1) ** 0.5, 0.01, 0.9)  # Zipf-like word use
    tilt = rng.normal(0, 0.25, num_words)  # words that lean positive or negative
    p = np.stack([np.clip(frequency * np.exp(sign * tilt), 0, 0.95) for sign in (-1, 1)])

    def reviews(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % 2)
        x = (rng.random((n, num_words)) < p[_mislabel(rng, y, classes=2, fraction=0.2)]).astype(np.float32)
        x[:, 0], x[:, IMDB_START_CHAR] = 0.0, 1.0  # as in the real data: no padding, always a start
        return x, y.astype(np.float32).reshape(-1, 1)

    return Arrays(*reviews(n_train), *reviews(n_test), source="SYNTHETIC imdb", synthetic=True)
