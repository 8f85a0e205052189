"""Stand-in for the course's ``dataloader``: Fashion-MNIST as ``keras.datasets.fashion_mnist.load_data()``
returns it, read from the canonical files in ``$REGIMEN_BENCH_DATA/fashion-mnist``."""

import os
from pathlib import Path

from jobs.data import canonical_files, read_images


def load_data():
    folder = Path(os.environ["REGIMEN_BENCH_DATA"])
    files = [folder / f for f in canonical_files("fashion_mnist")]
    x_train, y_train, x_test, y_test = read_images("fashion_mnist", files)
    return (x_train, y_train), (x_test, y_test)
