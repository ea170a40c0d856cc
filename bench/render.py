"""What rendering a template costs the intake per request, with nothing else.

``bench.run pipeline`` sends inline title/body requests, so it never renders a template; this
times the render step the intake runs for a ``template_id`` request (agents/templating.py:
the table read, the compiled-template cache check, the user's attributes, each channel's part
in the user's locale with fallback) against the inline path (``{name}`` placeholders while
the request is parsed). The tables are plain dicts here, so the RocksDB reads a worker does
are not in these figures (a few µs each: the templates value and the user's attributes).

    .venv/bin/python -m bench.render [--renders N] [--repeat R]

Prints µs per request (median of R runs of N renders) for one, three and five channels.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import orjson

from agents.templating import Templating
from streams.records import NotificationRequest, parse_request
from streams.templates import parse_template, to_stored
from tables import Tables

TEMPLATE = {
    "template_id": "order_shipped",
    "version": 1,
    "default_locale": "en",
    "locales": {
        "en": {
            "push": {"title": "Order {{ order_id }} shipped", "body": "Hi {{ user.name }}"},
            "email": {
                "subject": "Your order {{ order_id }}",
                "html": "<html><body><h1>Hi {{ user.name }}</h1>"
                + "<p>Your order {{ order_id }} of {{ total }} is on its way.</p>" * 20
                + "<p><a href='https://shop.example.com/o/{{ order_id }}'>Track it</a></p>"
                "</body></html>",
            },
            "sms": {"text": "Order {{ order_id }} shipped, {{ total }}"},
        },
        "pt": {
            "push": {"title": "Pedido {{ order_id }} enviado", "body": "Olá {{ user.name }}"},
            "sms": {"text": "Pedido {{ order_id }} enviado"},
        },
    },
}
REQUEST = {
    "notification_id": "n-1",
    "user_id": "user-1",
    "template_id": "order_shipped",
    "data": {"order_id": "A-123", "total": "$99.99"},
}
INLINE = {
    "notification_id": "n-1",
    "user_id": "user-1",
    "title": "Order {order_id} shipped",
    "body": "Your order {order_id} of {total} is on its way",
    "data": {"order_id": "A-123", "total": "$99.99"},
}


class _Tables:
    """The two tables the render step reads, as dicts."""

    def __init__(self) -> None:
        self.templates = {"order_shipped": to_stored(parse_template(orjson.dumps(TEMPLATE)))}
        self.user_attributes = {"user-1": {"name": "Ana", "locale": "pt-BR"}}


def per_call_us(call: Callable[[], Any], count: int, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(count):
            call()
        runs.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(runs)


def renderer(
    templating: Templating, request: NotificationRequest, channels: tuple[str, ...]
) -> Callable[[], Any]:
    return lambda: templating.render(request, channels)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    templating = Templating(cast(Tables, _Tables()))
    raw = orjson.dumps(REQUEST)
    request = parse_request(raw)
    inline = orjson.dumps(INLINE)
    print(f"µs per request, median of {args.repeat} runs of {args.renders}:")
    parse_inline = per_call_us(lambda: parse_request(inline), args.renders, args.repeat)
    parse_template_request = per_call_us(lambda: parse_request(raw), args.renders, args.repeat)
    print(f"  {'parse, inline title/body with {name} placeholders':<52}{parse_inline:7.2f}")
    print(f"  {'parse, template_id request':<52}{parse_template_request:7.2f}")
    for channels in (("push",), ("push", "email", "sms"), ("push", "email", "sms", "webhook",
                                                            "in_app")):  # fmt: skip
        cost = per_call_us(renderer(templating, request, channels), args.renders, args.repeat)
        label = f"render {len(channels)} channel(s): {', '.join(channels)}"
        print(f"  {label:<52}{cost:7.2f}")


if __name__ == "__main__":
    main()
