"""A Faust monitor that records nothing per message.

Faust's default Monitor runs several bookkeeping hooks for every record (message in/out, stream
event in/out, table get/set, send initiated/completed) whose figures nothing here reads; the
no-op versions were worth +6-10 % events/s on this machine (BROKER.md). Rebalance and commit
bookkeeping are kept.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.sensors.monitor import Monitor
from faust.types import TP

# Off unless NOTIFY_LOG_COMMITS is set (config.logging): one line per commit, every ~3 s per
# worker; what an operator (or a failing restart test) reads to see where a group stands.
commit_log = logging.getLogger("notify.commits")


class QuietMonitor(Monitor):
    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        if commit_log.isEnabledFor(logging.INFO):
            commit_log.info("committed %s", describe_offsets(tp_offsets))

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None


def describe_offsets(tp_offsets: dict[TP, int]) -> str:
    return " ".join(
        f"{tp.topic}:{tp.partition}={offset}" for tp, offset in sorted(tp_offsets.items())
    )
