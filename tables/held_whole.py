"""The tables every worker holds whole (templates, API keys, erased users): one declaration.

Any worker may need any entry of them (any request may name any template, any caller any
worker, any lane any erased user), so each is a Faust GlobalTable: every changelog partition
on every worker (as a standby where it is not the active owner). One partition, and a
recovery/standby buffer of one record, as Faust's own GlobalTable docstring prescribes for
several workers: with the default buffer of 1,000 a standby applies changelog records only
1,000 at a time, so a worker that does not own the partition would not see a new entry until
a thousand more were written. Their entries are few and written rarely, so one partition
costs nothing.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TableT

PARTITIONS = 1


def declare_held_whole(
    app: faust.App, name: str, help: str, key_type: type, value_type: type | None = None
) -> TableT[Any, Any]:
    """``value_type`` None: Faust's default value serializer (JSON)."""
    return app.GlobalTable(
        name,
        default=None,
        partitions=PARTITIONS,
        recovery_buffer_size=1,
        key_type=key_type,
        value_type=value_type,
        help=help,
    )
