"""The benchmark's pure statistics (the benchmark itself never runs in CI)."""

from __future__ import annotations

import gc
import math
import statistics

import pytest

from bench.procstats import collector_paused, parse_cpu_seconds, parse_status_kb
from bench.stats import (
    Row,
    fmt_latency,
    fmt_ratio,
    format_table,
    metric,
    per_10k,
    percentile,
    rate,
    ratio,
    span,
    summarize,
    summarize_groups,
)
from bench.storm import longest_gap, slowest


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 25) == pytest.approx(1.75)


def test_percentile_matches_statistics_inclusive_quantiles() -> None:
    values = [float(v) for v in (13, 1, 7, 99, 42, 5, 8, 21, 3, 64, 2)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 25, 50, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])


def test_percentile_is_order_independent_and_handles_one_value() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan_and_range_is_checked() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_summarize() -> None:
    summary = summarize([float(v) for v in range(1, 101)])
    assert summary["count"] == 100
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["max"] == 100.0
    empty = summarize([])
    assert empty["count"] == 0
    assert math.isnan(empty["p99"])


def test_summarize_groups_adds_an_all_group() -> None:
    out = summarize_groups([("high", 1.0), ("low", 10.0), ("high", 3.0)])
    assert set(out) == {"high", "low", "all"}
    assert out["high"]["count"] == 2
    assert out["high"]["p50"] == 2.0
    assert out["all"]["count"] == 3
    assert out["all"]["max"] == 10.0


def test_rate_span_and_cpu_per_10k() -> None:
    assert rate(1000, 2.0) == 500.0
    assert math.isnan(rate(1, 0.0))
    assert span([5.0, 1.0, 3.0]) == 4.0
    assert span([1.0]) == 0.0
    assert span([]) == 0.0
    assert per_10k(3.0, 20_000) == 1.5
    assert math.isnan(per_10k(3.0, 0))


def test_ratio_refuses_missing_or_non_positive_denominators() -> None:
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(None, 2.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(math.nan, 2.0) is None


def test_formatting_helpers() -> None:
    assert fmt_ratio(None) == "-"
    assert fmt_ratio(0.012345) == "0.0123"
    assert fmt_latency({"p50": 12.4, "p95": 250.0, "p99": 1234.6}) == "12 / 250 / 1,235"
    assert fmt_latency({"p50": math.nan, "p95": math.nan, "p99": math.nan}) == "- / - / -"
    assert metric("x", math.nan, "s").value == "-"
    assert metric("x", 1234.567, "s", 1).value == "1,234.6"


def test_format_table_aligns_columns_and_shows_ratios_only_when_present() -> None:
    rows = [
        metric("raw consume", 250_000.0, "records/s"),
        metric("pipeline", 900.0, "notif/s", vs_raw=0.0036, vs_minimal=0.2),
    ]
    text = format_table(rows, title="bench")
    lines = text.splitlines()
    assert lines[0] == "bench"
    assert "/ raw consume" in lines[1] and "/ minimal Faust" in lines[1]
    assert set(lines[2]) == {"-"}
    assert lines[3].startswith("raw consume") and "250,000" in lines[3]
    assert lines[4].split()[-2:] == ["0.0036", "0.2"]
    # numbers are right-aligned: the value column ends at the same offset on every row
    assert lines[3].index("250,000") + len("250,000") == lines[4].index("900") + len("900")

    plain = format_table([Row("a", "1", "s")])
    assert "raw consume" not in plain.splitlines()[0]


def test_parse_proc_stat_counts_fields_after_the_command_name() -> None:
    # A command name with a space and a ")" must not shift the fields.
    line = "4242 (faust worker) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 100"
    assert parse_cpu_seconds(line, ticks_per_second=100) == 3.0


def test_parse_proc_status_values() -> None:
    text = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
    assert parse_status_kb(text, "VmHWM") == 204800
    assert parse_status_kb(text, "VmRSS") == 102400
    assert parse_status_kb(text, "VmSwap") is None


def test_records_per_delivery_counts_only_what_each_topic_gained() -> None:
    from bench.records import per_delivery

    before = {"delivery-events": 10, "notification-requests": 4}
    after = {"delivery-events": 30, "notification-requests": 4, "deliveries.push.high": 5}
    assert per_delivery(before, after, 10) == {"deliveries.push.high": 0.5, "delivery-events": 2.0}


def test_the_slowest_high_deliveries_say_when_and_where_they_waited() -> None:
    requests = {"a": {"created_at": 101.0}, "b": {"created_at": 102.0}, "c": {"created_at": 103.0}}
    received = [
        {"notification_id": "a", "received_at": 101.1},
        {"notification_id": "b", "received_at": 103.5},
        {"notification_id": "c", "received_at": 103.2},
    ]
    events = [{"notification_id": "b", "status": "accepted", "at": 103.0}]

    rows = slowest(received, requests, events, started=100.0, count=2)

    assert [round(row["sent_at_s"] or 0, 3) for row in rows] == [2.0, 3.0]
    assert rows[0]["total_ms"] == pytest.approx(1500)
    assert rows[0]["intake_ms"] == pytest.approx(1000)
    assert rows[0]["lane_ms"] == pytest.approx(500)
    assert rows[1]["intake_ms"] is None and rows[1]["lane_ms"] is None


def test_the_longest_gap_between_deliveries_and_when_it_began() -> None:
    received = [{"received_at": t} for t in (100.5, 100.0, 103.0, 103.2)]

    assert longest_gap(received, started=99.0) == {
        "seconds": pytest.approx(2.5),
        "began_at_s": pytest.approx(1.5),
    }
    assert longest_gap([], started=0.0) == {"seconds": 0.0, "began_at_s": 0.0}


def test_the_harness_collector_is_off_only_while_it_measures() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a phase that fails")
    assert gc.isenabled()
