"""How many table changelog writes wait for the producer before Faust's hand-off waits too.

Faust's tables write their changelog with ``send_soon``: each record goes into the app
producer's ``ProducerBuffer``, and one task hands them to the producer one at a time. Before
every fetched record, Faust's one hand-off task (the conductor) calls the buffer's
``wait_until_ebb``, which, once the buffer holds more than ``max_messages`` (100, a class
attribute that no setting reaches), waits until up to 100 of them are sent. That wait holds
every topic's records, the urgent ones too, as a full stream queue did before
``streams/stream_buffer.py``.

Measured in ``bench.run storm --storm-via priority-topics`` (README, Performance, ninth
sitting): with 100, the hand-off waited 195 times in one storm, 3.6 s in all and up to 137 ms at
a time, with 102-145 writes buffered in nearly every wait. Every delivery writes a few
changelog records in one burst, so 100 is a few deliveries' worth and is crossed in normal
running, not only when the producer is behind. ``NOTIFY_CHANGELOG_BUFFER_MESSAGES`` sets the
limit; it still bounds what the buffer holds when the broker cannot keep up.

The delivery ledger's writes do not go through this buffer (tables/prompt_changelog.py).
"""

from __future__ import annotations

import faust


def limit_changelog_buffer(app: faust.App, messages: int) -> None:
    """The conductor reads ``max_messages`` at every hand-off, so setting it on the app's one
    producer buffer takes effect for every stream, before or after the worker starts."""
    app.producer.buffer.max_messages = messages
