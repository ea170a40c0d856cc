"""Just enough of a Faust event for code that reads its position and acks it."""

from __future__ import annotations

from dataclasses import dataclass, field

from faust.types import TP

LANE = TP("deliveries.push.high", 0)


@dataclass
class FakeMessage:
    tp: TP
    offset: int


@dataclass
class FakeEvent:
    message: FakeMessage
    acked: list[int] = field(default_factory=list)

    def ack(self) -> bool:
        self.acked.append(self.message.offset)
        return True


def events(offsets: list[int], tp: TP = LANE) -> list[FakeEvent]:
    return [FakeEvent(FakeMessage(tp, offset)) for offset in offsets]
