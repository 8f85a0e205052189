"""Stand-in for the course's ``visual`` module: ``Visulaize`` (sic) plots training and validation loss."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def Visulaize(histories):
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, history in histories:
        epochs = range(1, len(history.history["loss"]) + 1)
        axes.plot(epochs, history.history["loss"], "--", label=f"{name} train")
        axes.plot(epochs, history.history["val_loss"], label=f"{name} validation")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.legend()
    name = "-".join(name for name, _ in histories).replace(" ", "_")
    figure.savefig(os.path.join(os.environ.get("REGIMEN_BENCH_OUT", "."), f"{name}.png"))
    plt.close(figure)
