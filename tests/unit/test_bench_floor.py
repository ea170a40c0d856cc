"""The floor benchmark's workload (bench/floor.py): the same deliveries as the pipeline's."""

from __future__ import annotations

import orjson

from bench.floor import floor_requests
from bench.workload import expected_deliveries, workload
from scripts.workload import make_users

INAPP_URL = "http://sandbox/inbox"


def test_each_floor_request_asks_for_the_deliveries_the_pipeline_makes_of_it() -> None:
    users = make_users(50, "http://sandbox/")
    requests = workload(users, 300, 100)
    floor = floor_requests(requests, users, INAPP_URL)
    bodies = [orjson.loads(value) for _, value in floor]
    by_user = {u.user_id: u for u in users}
    assert sum(b["deliveries"] for b in bodies) == expected_deliveries(requests, by_user, INAPP_URL)
    # Keyed by the user (co-partitioned as the pipeline's requests), one id each.
    assert [key.decode() for key, _ in floor] == [r["user_id"] for r in requests]
    assert [b["user_id"] for b in bodies] == [r["user_id"] for r in requests]
    assert len({b["id"] for b in bodies}) == len(requests)
    # Users switch channels off, so some requests make none and some several.
    assert {0, 1} <= {b["deliveries"] for b in bodies}
    assert max(b["deliveries"] for b in bodies) > 1
