"""Make an API key: ``python -m scripts.api_keys new <id> --scopes send,read``.

Prints the key once (give it to the caller) and the ``NOTIFY_API_KEYS`` entry that holds only
its hash. For a rotation, add the new entry next to the old one (same id), move the caller
over, then remove the old entry.
"""

from __future__ import annotations

import argparse
import json

from api.keys import Scope, new_key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="a new key and its settings entry")
    new.add_argument("key_id", help="letters, digits and '-': who the key is for")
    new.add_argument("--scopes", default="send,read", help="comma-separated: send, read, admin")
    new.add_argument("--rate", type=float, default=None, help="requests/s (default: settings)")
    new.add_argument("--callback-url", default=None, help="status callbacks of its requests")
    args = parser.parse_args(argv)
    scopes = [Scope(s.strip()) for s in args.scopes.split(",") if s.strip()]
    token, sha256 = new_key(args.key_id)
    entry: dict[str, object] = {"id": args.key_id, "sha256": sha256, "scopes": scopes}
    if args.rate is not None:
        entry["rate_per_second"] = args.rate
    if args.callback_url:
        entry["callback_url"] = args.callback_url
    print(f"key (shown once): {token}")
    print(f"NOTIFY_API_KEYS entry: {json.dumps(entry)}")


if __name__ == "__main__":
    main()
