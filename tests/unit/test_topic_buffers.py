"""Each lane's stream buffer is the size the settings give it, in the agent's clone too.

``App.topic`` (faust-streaming 0.15.3) drops its ``maxsize``: before ``streams/topics.py`` set it
on the topic, every lane buffered up to ``stream_buffer_maxsize``, so a lane held back by its
CPU ceiling kept 52,428 records in memory instead of pausing at ``lane_buffer_size`` (it pauses at
the size now: streams/stream_buffer.py).
"""

from __future__ import annotations

import faust

from config.settings import Settings
from config.vocabulary import Priority
from streams.topics import declare_topics


def test_lanes_buffer_what_the_settings_say_and_other_streams_faust_s_default() -> None:
    settings = Settings(lane_buffer_size=2048, stream_buffer_size=4096)
    app = faust.App("topic-buffers-test", stream_buffer_maxsize=settings.stream_buffer_size)
    topics = declare_topics(app, settings)
    for lane in (*topics.delivery_lanes.values(), topics.requests_low, topics.callback_lane):
        assert lane.queue.maxsize == 2048
        # The agent reads a clone of its channel: the size must survive it.
        assert lane.clone(is_iterator=True).queue.maxsize == 2048
    assert topics.delivery_lanes[Priority.LOW].queue.pressure_high_size == 2048  # Faust pauses
    assert topics.requests_high.queue.maxsize == 4096
