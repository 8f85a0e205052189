"""Run one of the seed's scripts offline, as the baseline of ``make bench``; write its final test metrics.

    python benchmarks/run_seed_script.py benchmarks/seed/dropout.py OUT.json     (REGIMEN_BENCH_DATA=DIR)

Keras' ``imdb`` and ``mnist`` loaders read the bench's data folder instead of downloading (the same arrays
Keras returns, through the same code Regimen reads them with); the script itself runs unchanged. Its
``main()`` returns the histories; since the seed validates on the test set, each history's last
``val_*`` values are its test metrics.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT / "benchmarks" / "seed"
#: The models each script's ``main()`` returns the histories of, in order.
VARIANTS = {
    "overfitting": ("basic", "overfit"),
    "regularization": ("basic", "l1", "l2"),
    "dropout": ("basic", "dropout"),
    "batchnorm": ("basic", "bn"),
    "fashion": ("develop",),
}


def offline_loaders(folder: Path) -> None:
    """Point ``tf.keras.datasets.imdb/mnist.load_data`` at the files in ``folder``."""
    import keras

    from jobs.data import imdb_load_data, read_images, read_npz

    def imdb(num_words=None, **_):
        path = folder / "imdb.npz"
        parts = imdb_load_data(read_npz(path), num_words, str(path))
        return parts["train"], parts["test"]

    def mnist(**_):
        x_train, y_train, x_test, y_test = read_images("mnist", [folder / "mnist.npz"])
        return (x_train, y_train), (x_test, y_test)

    keras.datasets.imdb.load_data = imdb
    keras.datasets.mnist.load_data = mnist


def main(script: Path, out: Path) -> None:
    sys.path[:0] = [str(SEED_DIR), str(ROOT)]
    import keras

    offline_loaders(Path(os.environ["REGIMEN_BENCH_DATA"]))
    keras.utils.set_random_seed(0)  # the scripts set none; Regimen's jobs use seed 0
    histories = runpy.run_path(str(script), run_name="seed_script")["main"]()
    histories = histories if isinstance(histories, tuple) else (histories,)
    metrics = {
        variant: {key[4:]: float(values[-1]) for key, values in history.history.items() if key.startswith("val_")}
        for variant, history in zip(VARIANTS[script.stem], histories, strict=True)
    }
    out.write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
