"""The end-to-end distillation's curve: training and held-out loss by epoch (``compression/end_to_end.py``)."""
from __future__ import annotations

from typing import Any

from ..files import save_figure


def render_curve(history: list[dict[str, Any]], path: str, title: str = "") -> None:
    """Training and held-out distillation loss by epoch, side by side on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    trained = [h for h in history if h["train"] is not None]
    ax.plot([h["epoch"] for h in trained], [h["train"] for h in trained], "o-", label="training pairs (augmented)")
    ax.plot([h["epoch"] for h in history], [h["heldout"] for h in history], "s-",
            label="held-out pairs (epoch 0: before training)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("distillation loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
