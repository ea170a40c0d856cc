"""What the run prints: the ratios between phases and the rows of the result table."""

from __future__ import annotations

from typing import Any

from bench.stats import Row, fmt_latency, metric, per_10k, ratio


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """Pipeline over raw and over minimal Faust (None where a phase did not run). Deliveries/s
    over records/s mixes units on purpose: it answers "what share of the raw record rate
    reaches a person as a notification"."""
    raw_r = results.get("raw", {})
    mini = results.get("minimal", {})
    pipe = results.get("pipeline", {})
    consume = raw_r.get("consume_per_second")
    events = mini.get("events_per_second")
    return {
        "minimal_events_over_raw_consume": ratio(events, consume),
        "pipeline_deliveries_over_raw_consume": ratio(pipe.get("deliveries_per_second"), consume),
        "pipeline_deliveries_over_minimal": ratio(pipe.get("deliveries_per_second"), events),
        "pipeline_requests_over_raw_consume": ratio(
            pipe.get("requests_per_second_end_to_end"), consume
        ),
        "pipeline_requests_over_minimal": ratio(pipe.get("requests_per_second_end_to_end"), events),
        "pipeline_cpu_per_10k_over_minimal": ratio(
            pipe.get("worker_cpu_seconds_per_10k_deliveries"),
            mini.get("worker_cpu_seconds_per_10k"),
        ),
    }


def table_rows(results: dict[str, Any], r: dict[str, float | None]) -> list[Row]:
    """The printed summary; the JSON file has everything else."""
    rows: list[Row] = []
    if raw_r := results.get("raw"):
        rows.append(metric("raw aiokafka produce", raw_r["produce_per_second"], "records/s"))
        rows.append(metric("raw aiokafka consume", raw_r["consume_per_second"], "records/s"))
    if mini := results.get("minimal"):
        rows.append(
            metric(
                "minimal Faust pass-through" + (" + POST" if mini.get("post_per_event") else ""),
                mini["events_per_second"],
                "events/s",
                vs_raw=r["minimal_events_over_raw_consume"],
            )
        )
        rows.append(
            metric("  worker CPU per 10k events", mini["worker_cpu_seconds_per_10k"], "s", 2)
        )
    if pipe := results.get("pipeline"):
        if env := pipe.get("worker_env"):
            rows.append(Row("pipeline workers with", env_text(env), ""))
        if pace := pipe.get("pace_requests_per_second"):
            rows.append(metric("pipeline requests offered (--pace)", pace, "requests/s"))
        rows += [
            metric(
                "pipeline deliveries (first->last)",
                pipe["deliveries_per_second"],
                "notif/s",
                vs_raw=r["pipeline_deliveries_over_raw_consume"],
                vs_minimal=r["pipeline_deliveries_over_minimal"],
            ),
            metric(
                "pipeline requests (produce->last)",
                pipe["requests_per_second_end_to_end"],
                "requests/s",
                vs_raw=r["pipeline_requests_over_raw_consume"],
                vs_minimal=r["pipeline_requests_over_minimal"],
            ),
            metric(
                "  worker CPU per 10k deliveries",
                pipe["worker_cpu_seconds_per_10k_deliveries"],
                "s",
                2,
                vs_minimal=r["pipeline_cpu_per_10k_over_minimal"],
            ),
            *(
                [
                    metric(
                        "  redis-server CPU per 10k deliveries",
                        per_10k(pipe["redis_cpu_seconds"], pipe["delivered"]),
                        "s",
                        2,
                    )
                ]
                if "redis_cpu_seconds" in pipe
                else []
            ),
            metric(
                "  first delivery after produce start",
                pipe["produce_start_to_first_delivery_seconds"],
                "s",
                1,
            ),
            metric(
                "  worker busy after last delivery",
                pipe["settle_seconds_after_last_delivery"],
                "s",
                1,
            ),
            metric("  peak worker RSS (VmHWM, max)", max(pipe["peak_worker_rss_mb_vmhwm"]), "MB"),
            metric("  broker CPU during the phase", pipe["broker_cpu_seconds"], "s", 1),
            metric("  harness CPU (sandboxes+producer)", pipe["harness_cpu_seconds"], "s", 1),
            Row(
                "  delivered / expected",
                f"{pipe['delivered']:,}/{pipe['expected_deliveries']:,}",
                "" if pipe["complete"] else "INCOMPLETE",
            ),
            Row("  rate_limited rejections", str(pipe["delivery_events"]["rate_limited"]), ""),
        ]
        for lane, summary in pipe["latency_ms_by_priority"].items():
            rows.append(Row(f"  latency {lane} p50/p95/p99", fmt_latency(summary), "ms"))
        for lane, summary in pipe["intake_latency_ms_by_priority"].items():
            rows.append(Row(f"  until intake accepted, {lane}", fmt_latency(summary), "ms"))
    if fl := results.get("floor"):
        rows += floor_rows(fl)
    for key, pr in results.items():
        if not key.startswith("priority_"):
            continue
        rows += [
            metric(
                f"priority via {pr['via']}: backlog drain",
                pr["backlog_drain_seconds"],
                f"s for {pr['backlog_deliveries']:,}",
                1,
            ),
            metric("  backlog drain rate", pr["backlog_deliveries_per_second"], "notif/s"),
            Row("  rate_limited rejections", str(pr["delivery_events"]["rate_limited"]), ""),
            Row(
                f"  high during drain (n={pr['high_latency_ms_during_drain']['count']})",
                fmt_latency(pr["high_latency_ms_during_drain"]),
                "ms p50/p95/p99",
            ),
            Row(
                "    of which until intake accepted",
                fmt_latency(pr["high_intake_latency_ms_during_drain"]),
                "ms p50/p95/p99",
            ),
            Row(
                "    of which accepted -> sandbox",
                fmt_latency(pr["high_lane_latency_ms_during_drain"]),
                "ms p50/p95/p99",
            ),
            Row(
                "  high on idle pipeline", fmt_latency(pr["idle_high_latency_ms"]), "ms p50/p95/p99"
            ),
            Row(
                "    of which until intake accepted",
                fmt_latency(pr.get("idle_high_intake_latency_ms", {})),
                "ms p50/p95/p99",
            ),
            Row(
                "    of which accepted -> sandbox",
                fmt_latency(pr.get("idle_high_lane_latency_ms", {})),
                "ms p50/p95/p99",
            ),
            metric("  peak worker RSS (sampled)", pr["peak_worker_rss_mb_sampled_sum"], "MB", 0),
            Row(
                "  CPU s worker / broker / harness",
                " / ".join(f"{v:.1f}" for v in pr["cpu_seconds_during_phase"].values()),
                f"s in {pr['phase_seconds']:.1f} s",
            ),
        ]
    if st := results.get("storm"):
        rows += storm_rows(st)
    if idle := results.get("idle"):
        rows += [
            Row(f"idle pipeline, {idle['seconds']:.0f} s", env_text(idle["worker_env"]), ""),
            metric("  worker CPU", 100 * idle["worker_cpu_share_of_a_core"], "% of a core", 1),
            metric("  broker CPU", 100 * idle["broker_cpu_share_of_a_core"], "% of a core", 1),
        ]
    return rows


TAIL = ("p50", "p95", "p99", "max")


def env_text(env: dict[str, str]) -> str:
    """A phase's ``--worker-env`` settings, as they were given."""
    return " ".join(f"{k}={v}" for k, v in env.items())


def storm_rows(st: dict[str, Any]) -> list[Row]:
    rows = [Row(f"storm via {st['via']}", env_text(st["worker_env"]), "")]
    for group, d in st["drains"].items():
        rows.append(
            metric(
                f"  {group} drain rate ({d['delivered']:,}/{d['expected']:,})",
                d["deliveries_per_second"],
                f"notif/s, {d['drain_seconds']:.0f} s",
            )
        )
    rows += [
        Row("  rate_limited rejections", str(st["delivery_events"]["rate_limited"]), ""),
        Row(
            f"  high during storm (n={st['high_latency_ms']['count']})",
            fmt_latency(st["high_latency_ms"], TAIL),
            "ms p50/p95/p99/max",
        ),
        Row(
            "    of which until intake accepted",
            fmt_latency(st["high_intake_latency_ms"], TAIL),
            "ms p50/p95/p99/max",
        ),
        Row(
            "    of which accepted -> sandbox",
            fmt_latency(st["high_lane_latency_ms"], TAIL),
            "ms p50/p95/p99/max",
        ),
        Row(
            "  CPU s worker / broker / harness",
            " / ".join(f"{v:.1f}" for v in st["cpu_seconds_during_phase"].values()),
            f"s in {st['phase_seconds']:.1f} s",
        ),
    ]
    rows += [
        Row(
            f"    slowest high, sent at {slow['sent_at_s']:.1f} s",
            f"{slow['total_ms']:,.0f} ({fmt_split(slow)})",
            "ms (intake + lane)",
        )
        for slow in st.get("high_slowest", [])[:3]
    ]
    if "longest_gap_between_deliveries" in st:
        gap = st["longest_gap_between_deliveries"]
        rows.append(
            Row(
                "  longest gap between any two deliveries",
                f"{gap['seconds'] * 1000:,.0f}",
                f"ms, from {gap['began_at_s']:.1f} s",
            )
        )
    return rows


def fmt_split(slow: dict[str, Any]) -> str:
    if slow["intake_ms"] is None:
        return "no accepted event"
    return f"{slow['intake_ms']:,.0f} + {slow['lane_ms']:,.0f}"


def floor_rows(fl: dict[str, Any]) -> list[Row]:
    """The design's record shape alone (bench/floor.py)."""
    rows = [Row("floor workers with", env_text(env), "")] if (env := fl.get("worker_env")) else []
    return [
        *rows,
        metric(
            f"floor ({fl['shape']}) deliveries (first->last)",
            fl["deliveries_per_second"],
            "notif/s",
        ),
        metric(
            "  worker CPU per 10k deliveries", fl["worker_cpu_seconds_per_10k_deliveries"], "s", 2
        ),
        metric("  peak worker RSS (VmHWM, max)", max(fl["peak_worker_rss_mb_vmhwm"]), "MB"),
        metric("  broker CPU during the phase", fl["broker_cpu_seconds"], "s", 1),
        metric("  harness CPU (sandbox+producer)", fl["harness_cpu_seconds"], "s", 1),
        Row(
            "  delivered / expected, notifications folded",
            f"{fl['distinct_deliveries']:,}/{fl['expected_deliveries']:,},"
            f" {fl['notifications_folded']:,}/{fl['requests']:,}",
            "" if fl["complete"] else "INCOMPLETE",
        ),
    ]
