"""Datasets: our readers equal Keras' loaders and the seed's preprocessing; sources, errors, synthetic."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from jobs import data
from jobs.spec import FashionMnist, Imdb, Mnist


def load(dataset, data_dir):
    """A dataset read from ``data_dir`` as `regimen run` reads it: located, then read."""
    return data.read_dataset(dataset, data.locate(dataset.name, data_dir, download=False))


def seed_sequences_shaping(sequences, dimension):
    """The seed's loop, verbatim but for names."""
    results = np.zeros((len(sequences), dimension))
    for i, word_indices in enumerate(sequences):
        results[i, word_indices] = 1.0
    return results


def fake_imdb_npz(path, n_train=60, n_test=40, seed=0):
    """A file in the canonical imdb.npz format: ragged object arrays of word-index lists."""
    rng = np.random.default_rng(seed)

    def reviews(n):
        return np.array(
            [[int(w) for w in rng.integers(1, 500, rng.integers(1, 30))] for _ in range(n)] + [[]], dtype=object
        )[:n]

    np.savez(
        path,
        x_train=reviews(n_train),
        y_train=rng.integers(0, 2, n_train),
        x_test=reviews(n_test),
        y_test=rng.integers(0, 2, n_test),
    )
    return path


def fake_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_idx(folder, prefix, images, labels):
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\0" * 16 + images.tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\0" * 8 + labels.tobytes())


def test_vectorised_multi_hot_equals_the_seed_loop():
    rng = np.random.default_rng(1)
    sequences = [list(rng.integers(0, 100, rng.integers(0, 50))) for _ in range(200)]
    np.testing.assert_array_equal(data.multi_hot(sequences, 100), seed_sequences_shaping(sequences, 100))


def test_imdb_equals_keras_load_data_then_the_seed_shaping(tmp_path, monkeypatch):
    from keras.src.datasets import imdb

    path = fake_imdb_npz(tmp_path / "imdb.npz")
    monkeypatch.setattr(imdb, "get_file", lambda *args, **kwargs: str(path))
    (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=100)
    ours = data.read_dataset(Imdb(name="imdb", num_words=100), [path])
    np.testing.assert_array_equal(ours.x_train, seed_sequences_shaping(x_train, 100))
    np.testing.assert_array_equal(ours.x_test, seed_sequences_shaping(x_test, 100))
    np.testing.assert_array_equal(ours.y_train[:, 0], y_train)
    np.testing.assert_array_equal(ours.y_test[:, 0], y_test)
    assert ours.x_train.dtype == np.float32 and ours.y_train.shape == (60, 1) and ours.y_test.shape == (40, 1)


def test_mnist_and_fashion_equal_keras_loaders_scaled(tmp_path, monkeypatch):
    from keras.src.datasets import fashion_mnist, mnist

    (xa, ya), (xb, yb) = fake_images(50, 1), fake_images(20, 2)
    np.savez(tmp_path / "mnist.npz", x_train=xa, y_train=ya, x_test=xb, y_test=yb)
    monkeypatch.setattr(mnist, "get_file", lambda *args, **kwargs: str(tmp_path / "mnist.npz"))
    (x_train, _), (x_test, y_test) = mnist.load_data()
    stored = load(Mnist(name="mnist"), tmp_path)
    assert stored.pixels and stored.x_train.dtype == np.uint8  # a quarter of float32's bytes in the object store
    ours = stored.for_fit()
    np.testing.assert_allclose(ours.x_train, x_train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ours.y_test, y_test)
    np.testing.assert_allclose(ours.x_test, x_test / 255.0, rtol=1e-6)
    assert ours.x_test.dtype == np.float32 and ours.x_test.max() <= 1.0

    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    write_idx(folder, "train", xa, ya)
    write_idx(folder, "t10k", xb, yb)
    monkeypatch.setattr(fashion_mnist, "get_file", lambda fname, **kwargs: str(folder / fname))
    (x_train, y_train), _ = fashion_mnist.load_data()
    ours = load(FashionMnist(name="fashion_mnist"), tmp_path).for_fit()
    np.testing.assert_allclose(ours.x_train, x_train / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ours.y_train, y_train)


def test_tensorflow_scales_pixels_to_the_same_float32_values_as_numpy():
    """The worker scales images into tensors on TensorFlow (no second copy in Keras), into arrays
    otherwise: every pixel value gives the same float32 either way."""
    from jobs.worker import fit_inputs

    every_value = np.arange(256, dtype=np.uint8).reshape(16, 16)
    stored = data.Arrays(every_value, np.zeros(16), every_value[:4], np.zeros(4), source="test", pixels=True)
    on_numpy = fit_inputs("jax", stored)
    on_tensorflow = fit_inputs("tensorflow", stored)
    assert not on_tensorflow.pixels and on_numpy.x_train.dtype == np.float32
    np.testing.assert_array_equal(on_numpy.x_train, (every_value / 255.0).astype(np.float32))  # the seed's
    np.testing.assert_array_equal(np.asarray(on_tensorflow.x_train), on_numpy.x_train)
    np.testing.assert_array_equal(np.asarray(on_tensorflow.x_test), on_numpy.x_test)


def test_the_data_folder_comes_before_the_keras_cache(tmp_path, monkeypatch):
    cache, folder = tmp_path / "home", tmp_path / "data"
    (cache / "datasets").mkdir(parents=True)
    folder.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(cache))
    fake_imdb_npz(cache / "datasets" / "imdb.npz")
    assert data.locate("imdb", None, download=False) == [cache / "datasets" / "imdb.npz"]
    fake_imdb_npz(folder / "imdb.npz")
    assert data.locate("imdb", folder, download=False) == [folder / "imdb.npz"]


def test_a_dataset_that_cannot_be_had_names_every_place_searched(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(data.DataUnavailable) as caught:
        data.locate("mnist", tmp_path / "staged")
    message = str(caught.value)
    assert str(tmp_path / "staged" / "mnist.npz") in message
    assert str(tmp_path / "home" / "datasets" / "mnist.npz") in message
    assert "download from" in message and "URL fetch failure" in message
    assert "--data-dir" in message and "make demo" in message and "Traceback" not in message


@pytest.mark.parametrize("content", [b"PK\x03\x04 truncated", b"not a zip at all"])
def test_corrupt_npz_files_are_named(tmp_path, content):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    with pytest.raises(data.DataCorrupt, match=str(path)):
        load(Mnist(name="mnist"), tmp_path)


def test_an_empty_file_counts_as_not_staged(tmp_path, monkeypatch):
    """An empty file is what an interrupted copy or download leaves: looked past, and named among the
    places searched."""
    (tmp_path / "mnist.npz").write_bytes(b"")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(data.DataUnavailable, match=str(tmp_path / "mnist.npz")):
        load(Mnist(name="mnist"), tmp_path)


def test_truncated_npz_and_wrong_shapes(tmp_path):
    path = tmp_path / "mnist.npz"
    (xa, ya), (xb, yb) = fake_images(10, 1), fake_images(5, 2)
    np.savez(path, x_train=xa, y_train=ya, x_test=xb, y_test=yb)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(data.DataCorrupt, match=r"not a readable \.npz"):
        load(Mnist(name="mnist"), tmp_path)
    np.savez(path, x_train=xa.reshape(10, 784), y_train=ya, x_test=xb, y_test=yb)
    with pytest.raises(data.DataCorrupt, match=r"expected \(N, 28, 28\)"):
        load(Mnist(name="mnist"), tmp_path)
    np.savez(path, x_train=xa / 255.0, y_train=ya, x_test=xb, y_test=yb)  # already scaled: not canonical
    with pytest.raises(data.DataCorrupt, match=r"train images are float64; expected uint8 pixels"):
        load(Mnist(name="mnist"), tmp_path)


def test_labels_that_are_not_class_indices_are_refused_by_a_run_and_by_regimen_data(tmp_path):
    path = tmp_path / "mnist.npz"
    (xa, ya), (xb, _) = fake_images(10, 1), fake_images(5, 2)
    np.savez(path, x_train=xa, y_train=ya, x_test=xb, y_test=np.full(5, 42))
    message = r"test labels must be class indices 0 to 9; found values from 42 to 42"
    with pytest.raises(data.DataCorrupt, match=message):
        load(Mnist(name="mnist"), tmp_path)
    with pytest.raises(data.DataCorrupt, match=message):
        data.check_readable("mnist", [path])
    np.savez(path, x_train=xa, y_train=ya.astype(str), x_test=xb, y_test=np.zeros(5, np.uint8))
    with pytest.raises(data.DataCorrupt, match=r"train labels are <U\d+; expected class indices 0 to 9"):
        data.check_readable("mnist", [path])
    imdb = fake_imdb_npz(tmp_path / "imdb.npz")
    data.check_readable("imdb", [imdb])
    raw = dict(np.load(imdb, allow_pickle=True))
    np.savez(imdb, **{**raw, "y_train": raw["y_train"] - 1})  # -1 and 0
    with pytest.raises(data.DataCorrupt, match=r"y_train must be class indices 0 to 1; found values from -1 to 0"):
        data.check_readable("imdb", [imdb])


class _RunsCodeWhenUnpickled:
    """What a malicious dataset file holds: unpickling it calls ``os.mkdir(marker)``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickled_object_other_than_lists_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "imdb.npz"
    reviews = np.array([_RunsCodeWhenUnpickled(marker)], dtype=object)
    np.savez(path, x_train=reviews, y_train=[0], x_test=np.array([[1]]), y_test=[0])
    with pytest.raises(data.DataCorrupt, match=r"not a readable \.npz file \(refusing to load \w+\.mkdir"):
        load(Imdb(name="imdb", num_words=100), tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("dataset", "shapes"),
    [
        (Imdb(name="imdb", num_words=100), ((25_000, 100), (25_000, 1), (25_000, 100), (25_000, 1))),
        (Mnist(name="mnist"), ((60_000, 28, 28), (60_000,), (10_000, 28, 28), (10_000,))),
        (FashionMnist(name="fashion_mnist"), ((60_000, 28, 28), (60_000,), (10_000, 28, 28), (10_000,))),
    ],
)
def test_synthetic_data_has_the_real_shapes_dtypes_and_balance(dataset, shapes):
    arrays = data.synthetic(dataset)
    got = (arrays.x_train.shape, arrays.y_train.shape, arrays.x_test.shape, arrays.y_test.shape)
    assert got == shapes
    assert arrays.x_train.dtype == np.float32 and arrays.x_train.min() >= 0 and arrays.x_train.max() <= 1
    counts = np.bincount(arrays.y_train.astype(int).ravel())
    assert counts.min() == counts.max()  # exactly balanced, as the real sets are near enough
    assert arrays.synthetic and "SYNTHETIC" in arrays.source
    again = data.synthetic(dataset)
    np.testing.assert_array_equal(arrays.x_test[:100], again.x_test[:100])
