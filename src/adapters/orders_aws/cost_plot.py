"""``orders-cost --plot``: monthly cost against a sustained request rate, with the
break-even points and the rates at which default quotas are passed (:mod:`orders_aws.limits`).

matplotlib is imported only here, and only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orders_aws.prices import CostError


def plot(
    path: Path,
    curves: Mapping[str, Callable[[float], float]],
    result: dict[str, Any],
    quotas: Mapping[str, float],
    title: str,
) -> dict[str, float]:
    """Draw ``curves`` (option -> USD per month at a sustained rate), the report's break-even
    points and a line at each quota's rate; returns the quota lines drawn (name -> req/s).
    What to draw is :func:`orders_aws.cost.draw`'s; this module only draws."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CostError("--plot needs matplotlib: pip install 'orders-core[plot]'") from None
    marks = [r for r in result["break_even_rps"].values() if r is not None]
    top = max(max([*marks, 1.0]) * 2, result["peak_rps"] * 1.2)
    if quotas:  # reach at least the first limit, so the picture shows where it is
        top = max(top, min(quotas.values()) * 1.15)
    rates = [top * i / 200 for i in range(201)]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, cost_at in curves.items():
        axes.plot([r * 60 for r in rates], [cost_at(r) for r in rates], label=name)
    for name, rps in result["break_even_rps"].items():
        if rps is not None:
            cost = curves["on demand"](rps)
            axes.plot([rps * 60], [cost], "o", color="black")
            axes.annotate(
                f"vs {name}: {rps * 60:,.0f}/min",
                (rps * 60, cost),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
            )
    drawn = {name: rps for name, rps in quotas.items() if rps <= top}
    for i, (name, rps) in enumerate(drawn.items()):
        axes.axvline(rps * 60, color="tab:red", linestyle="--", linewidth=0.8)
        axes.annotate(
            f"{name}: {rps * 60:,.0f}/min",
            (rps * 60, 0),
            xycoords=("data", "axes fraction"),
            xytext=(-3, 8 + 12 * i),
            horizontalalignment="right",
            textcoords="offset points",
            fontsize=7,
            color="tab:red",
        )
    axes.set_xlabel("sustained requests per minute")
    axes.set_ylabel("USD per month")
    axes.set_title(title)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return drawn
