"""``retrieval.png``: recall@K curves in both directions, and text->video R@1 per scale and text field."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from vidla_eval.metrics import RetrievalRanks
from vidla_format.layout import SCALES

#: The curves run to this K (or the largest rank, if smaller).
CURVE_MAX_K = 50


def recall_curve(ranks: np.ndarray, max_k: int = CURVE_MAX_K) -> list[float]:
    """Recall@K in percent for K = 1..max_k."""
    ks = np.arange(1, max_k + 1)
    return [float(100.0 * np.mean(ranks <= k)) for k in ks]


def plot(
    results: dict[str, Any], ranks: dict[str, RetrievalRanks], title: str, text_fields: tuple[str, ...]
) -> bytes:
    """``retrieval.png``'s bytes: text->video and video->text recall@K curves, and R@1 per scale and field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_scale = [n for n in ranks if not n.startswith("all/")] if any("/" in n for n in ranks) else []
    panels = 3 if per_scale else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    for ax, direction, label in ((axes[0], "t2v", "text → video"), (axes[1], "v2t", "video → text")):
        for name, r in ranks.items():
            values = getattr(r, direction)
            k = min(CURVE_MAX_K, int(values.max()) if values.size else 1)
            ax.plot(range(1, k + 1), recall_curve(values, k), label=name)
        ax.set(xlabel="K", ylabel="recall@K (%)", title=label, ylim=(0, 101))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if per_scale:
        _bar_r1(axes[2], results, text_fields)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=110, format="png")
    plt.close(fig)
    return png.getvalue()


def _bar_r1(ax: Any, results: dict[str, Any], text_fields: tuple[str, ...]) -> None:
    """Grouped bars: text->video R@1 per scale, one bar per text field."""
    groups = [s for s in (*SCALES, "all") if any(f"{s}/{f}" in results for f in text_fields)]
    width = 0.8 / len(text_fields)
    for i, name in enumerate(text_fields):
        values = [
            results.get(f"{g}/{name}", {}).get("plain", {}).get("t2v", {}).get("R@1", 0.0) for g in groups
        ]
        ax.bar(np.arange(len(groups)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(text_fields) - 1) / 2, groups)
    ax.set(ylabel="text → video R@1 (%)", title="R@1 per scale", ylim=(0, 101))
    ax.legend(fontsize=7)
