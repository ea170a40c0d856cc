"""Pure statistics for the benchmark: percentiles, rates, ratios and the printed table.

Kept free of I/O so that it can be unit-tested in CI while the benchmark itself never runs
there (its numbers depend on the machine, so it asserts nothing about time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    Same definition as numpy's default and ``statistics.quantiles(method="inclusive")``, so a
    p99 of 200 samples is not just the second-largest value. NaN for no samples: an empty lane
    is reported as such instead of as 0 ms, which would read as "fast".
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """count, mean, p50, p95, p99 and max of a sample (e.g. latencies in ms)."""
    if not values:
        nan = math.nan
        return {"count": 0, "mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    return {
        "count": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": float(max(values)),
    }


def summarize_groups(pairs: Iterable[tuple[str, float]]) -> dict[str, dict[str, float]]:
    """(group, value) pairs -> summary per group, plus ``"all"`` over every value."""
    groups: dict[str, list[float]] = {}
    everything: list[float] = []
    for group, value in pairs:
        groups.setdefault(group, []).append(value)
        everything.append(value)
    out = {group: summarize(values) for group, values in sorted(groups.items())}
    out["all"] = summarize(everything)
    return out


def rate(count: float, seconds: float) -> float:
    """Events per second; NaN when no time elapsed (one event, or none)."""
    return count / seconds if seconds > 0 else math.nan


def span(timestamps: Iterable[float]) -> float:
    """Seconds from the first to the last timestamp (0 for fewer than two)."""
    values = list(timestamps)
    return max(values) - min(values) if len(values) > 1 else 0.0


def per_10k(cpu_seconds: float, count: float) -> float:
    """CPU seconds per 10,000 items: comparable across runs of different sizes."""
    return cpu_seconds * 10_000 / count if count > 0 else math.nan


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either side is missing or not positive."""
    if numerator is None or denominator is None:
        return None
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return None
    return numerator / denominator


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    """Ratios span 1e-3..1: three significant digits keep both ends readable."""
    if value is None:
        return "-"
    return f"{value:.3g}"


def fmt_latency(summary: Mapping[str, float], keys: tuple[str, ...] = ("p50", "p95", "p99")) -> str:
    """``p50 / p95 / p99`` (or ``keys``) in ms from a ``summarize`` result."""
    return " / ".join(_number(summary.get(k), 0) for k in keys)


@dataclass(frozen=True)
class Row:
    """One printed line: what was measured, its value and unit, and optional ratios."""

    label: str
    value: str
    unit: str = ""
    vs_raw: float | None = None
    vs_minimal: float | None = None


def metric(
    label: str, value: float | None, unit: str, digits: int = 0, **ratios: float | None
) -> Row:
    return Row(label, _number(value, digits), unit, **ratios)


def format_table(rows: Sequence[Row], title: str = "") -> str:
    """Fixed-width text table; the ratio columns appear only if some row has a ratio."""
    with_ratios = any(r.vs_raw is not None or r.vs_minimal is not None for r in rows)
    header = ["measurement", "value", "unit"]
    if with_ratios:
        header += ["/ raw consume", "/ minimal Faust"]
    body = []
    for r in rows:
        cells = [r.label, r.value, r.unit]
        if with_ratios:
            cells += [fmt_ratio(r.vs_raw), fmt_ratio(r.vs_minimal)]
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        # Labels left-aligned, numbers right-aligned so that digits line up.
        parts = [cells[0].ljust(widths[0]), cells[1].rjust(widths[1]), cells[2].ljust(widths[2])]
        parts += [c.rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(header))
    out = [title] if title else []
    out += [line(header), rule, *(line(c) for c in body)]
    return "\n".join(out)
