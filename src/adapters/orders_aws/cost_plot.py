"""``orders-cost --plot``: monthly cost against a sustained request rate, each option a
line, the break-even points marked (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orders_aws.cost import OPTIONS, Function, Profile, monthly
from orders_aws.prices import CostError


def plot(path: Path, fn: Function, prices: dict[str, Any], result: dict[str, Any]) -> None:
    """Cost per month against a sustained request rate, break-even points marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CostError("--plot needs matplotlib: pip install 'orders-core[plot]'") from None
    marks = [r for r in result["break_even_rps"].values() if r is not None]
    top = max(max([*marks, 1.0]) * 2, result["peak_rps"] * 1.2)
    rates = [top * i / 200 for i in range(201)]
    figure, axes = plt.subplots(figsize=(8, 5))
    for name in OPTIONS:
        axes.plot(
            [r * 60 for r in rates],
            [monthly(name, Profile.flat(r), fn, prices) for r in rates],
            label=name,
        )
    for name, rps in result["break_even_rps"].items():
        if rps is not None:
            cost = monthly("on demand", Profile.flat(rps), fn, prices)
            axes.plot([rps * 60], [cost], "o", color="black")
            axes.annotate(
                f"vs {name}: {rps * 60:,.0f}/min",
                (rps * 60, cost),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
            )
    axes.set_xlabel("sustained requests per minute")
    axes.set_ylabel("USD per month")
    axes.set_title(
        f"orders-core monthly cost ({fn.arch}, {fn.memory_mb} MB, "
        f"p50 {fn.p50_ms:g} ms; prices {result['prices']['read_on']})"
    )
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
