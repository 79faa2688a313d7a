"""How an ``orders-cost`` report reads: the table (:func:`render`) and ``--json``
(:func:`for_json`), from the dict :func:`orders_aws.cost.report` returns."""

from __future__ import annotations

from typing import Any

from orders_aws import limits


def for_json(result: dict[str, Any]) -> dict[str, Any]:
    """The report as ``--json`` prints it: money in cents, requests whole, rates to 3
    decimals (0.1 + 0.2 arithmetic printed 999999.9999999998 requests)."""

    def cents(parts: dict[str, float]) -> dict[str, float]:
        return {name: round(value, 2) for name, value in parts.items()}

    return {
        **result,
        "requests_per_month": round(result["requests_per_month"]),
        "peak_rps": round(result["peak_rps"], 3),
        "container_task_rps": round(result["container_task_rps"], 3),
        "costs": {name: cents(parts) for name, parts in result["costs"].items()},
        "totals": cents(result["totals"]),
        "break_even_rps": {
            name: None if rps is None else round(rps, 3)
            for name, rps in result["break_even_rps"].items()
        },
        "warnings": limits.for_json(result["warnings"]),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['requests_per_month']:,.0f} requests/month; prices {result['prices']['region']}, "
        f"read {result['prices']['read_on']}",
        "",
        f"{'option':<14}{'USD/month':>12}  breakdown",
    ]
    for name, parts in result["costs"].items():
        detail = ", ".join(f"{k} {v:,.2f}" for k, v in parts.items() if v)
        lines.append(f"{name:<14}{result['totals'][name]:>12,.2f}  {detail}")
    lines.append("")
    lines.append(
        f"cheapest: {result['cheapest']}  (provisioned concurrency "
        f"{result['provisioned_concurrency']}, container tasks {result['container_tasks']} "
        f"at {result['container_task_rps']:,.0f} req/s)"
    )
    for name, rps in result["break_even_rps"].items():
        where = (
            "never, up to 1M req/s"
            if rps is None
            else f"{rps:,.1f} req/s ({rps * 60:,.0f} req/min)"
        )
        lines.append(f"break-even on demand vs {name}: {where}")
    lines += ["", limits.render(result["warnings"], result["region"])]
    return "\n".join(lines)
