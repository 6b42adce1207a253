"""The temporal benchmark's markdown tables: medians over seeds, each seed's value in brackets.

Split from ``temporal_benchmark.py`` (training and scoring), which prints these.
"""

from __future__ import annotations

import statistics
from typing import Any

from vidla_format.layout import SCALES

ARCHS = ("vidla", "meanpool")
ROWS = (*SCALES, "all")
KNOCKOUTS = ("no temporal position", "no temporal attention", "no [MST]")


def _values(runs: list[dict[str, Any]], path: tuple[str, ...]) -> list[float]:
    out = []
    for r in runs:
        value: Any = r
        for key in path:
            value = value[key]
        out.append(float(value))
    return out


def _cell(values: list[float]) -> str:
    """The median over seeds, each seed's value in brackets when there are several."""
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({'/'.join(f'{v:.0f}' for v in values)})"


def table(runs: list[dict[str, Any]], facts: dict[str, dict[str, float]]) -> str:
    """Per length: both models' R@1 (all, order-sensitive), order pick, chance levels, and the ratio of the
    order-sensitive R@1 medians (each seed's own ratio in brackets)."""
    lines = [
        "| length | queries (order-sens.) | R@1 VidLA | R@1 meanP | order-sens. R@1 VidLA | order-sens. R@1 meanP "
        "| order-sens. ratio VidLA/meanP | order-blind ceiling | order pick VidLA | order pick meanP | chance R@1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        f = facts[row]
        v = {(a, k): _values(runs, ("scores", a, row, k)) for a in ARCHS for k in ("r1", "r1_order", "pick")}
        ratio = ratio_of(
            statistics.median(v["vidla", "r1_order"]), statistics.median(v["meanpool", "r1_order"])
        )
        if len(runs) > 1:
            seeds = zip(v["vidla", "r1_order"], v["meanpool", "r1_order"], strict=True)
            ratio += f" ({'/'.join(ratio_of(a, b, 1) for a, b in seeds)})"
        lines.append(
            f"| {row} | {f['queries']} ({f['order_queries']}) | {_cell(v['vidla', 'r1'])} | "
            f"{_cell(v['meanpool', 'r1'])} | {_cell(v['vidla', 'r1_order'])} | {_cell(v['meanpool', 'r1_order'])} | "
            f"**{ratio}** | {f['order_blind']:.1f} | {_cell(v['vidla', 'pick'])} | {_cell(v['meanpool', 'pick'])} | "
            f"{f['chance']:.2f} |"
        )
    return "\n".join(lines)


def ratio_of(a: float, b: float, digits: int = 2) -> str:
    return "inf" if b == 0 else f"{a / b:.{digits}f}"


def knockout_table(runs: list[dict[str, Any]]) -> str:
    """The trained VidLA with one part knocked out at evaluation: order-sensitive R@1 and order pick."""
    header = (
        "| VidLA at evaluation | " + " | ".join(f"order pick {r}" for r in ROWS) + " | order-sens. R@1 all |"
    )
    lines = [header, "|---" * (len(ROWS) + 2) + "|"]
    variants = [("trained, intact", ("scores", "vidla"))] + [(k, ("knockouts", k)) for k in KNOCKOUTS]
    for name, path in variants:
        picks = " | ".join(_cell(_values(runs, (*path, row, "pick"))) for row in ROWS)
        lines.append(f"| {name} | {picks} | {_cell(_values(runs, (*path, 'all', 'r1_order')))} |")
    return "\n".join(lines)


def frames_table(runs: list[dict[str, Any]], trained: int, other: int) -> str:
    """Both models evaluated at the training frame count and at ``other`` (the same clips, sampled
    denser): order-sensitive R@1 and order pick over all lengths. VidLA reads ``other`` frames through
    its temporal positions interpolated from the ``trained`` ones (docs/model.md, "Temporal positions")."""
    lines = [
        "| model | frames | order-sens. R@1 all | order pick all | R@1 all |",
        "|---|---|---|---|---|",
    ]
    for arch in ARCHS:
        for frames, key in ((trained, ("scores", arch)), (other, ("other_frames", arch))):
            cells = [_cell(_values(runs, (*key, "all", k))) for k in ("r1_order", "pick", "r1")]
            lines.append(f"| {arch} | {frames}{' (trained)' if frames == trained else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
