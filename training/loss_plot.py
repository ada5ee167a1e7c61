"""Loss curves as a PNG beside each checkpoint."""
from __future__ import annotations

from pathlib import Path


def plot_history(history: list[dict], path: Path, title: str = "") -> None:
    """Training and validation loss (bits per token) and validation accuracy per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, [h["train_loss_bits"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss_bits"] for h in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss (bits per token)", title=title or "loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
