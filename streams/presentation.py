"""How a push is presented: the request's ``push`` object, carried by every delivery and read
by the push providers (APNs ``aps``, FCM notification/android/apns). A leaf module like
streams/vocabulary.py, so providers can share the type without depending on the rest of
``streams``."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

# 64 bits, like every integer orjson writes (streams.wire.JsonInt, which this leaf cannot import).
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class PushOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every option is optional and absent ones stay absent on the wire: an unset field is
    ``UNSET`` (falsy) and is not encoded, so a delivery carries exactly the options its request
    named. ``null`` is refused, as is an option this does not know."""

    sound: str | UnsetType = UNSET
    badge: _Int | UnsetType = UNSET  # 0 clears the badge, so "set" is not "truthy"
    image: str | UnsetType = UNSET  # a URL; APNs needs mutable-content for an extension to fetch it
    mutable_content: bool | UnsetType = UNSET
    content_available: bool | UnsetType = UNSET  # wakes the app (background push)


NO_PUSH_OPTIONS = PushOptions()
