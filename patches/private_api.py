"""Private attributes of other libraries that the app's own modules use, checked at start-up.

No patch: nothing here is replaced. But each line of the app named below leans on something
its library does not promise to keep, so it is pinned like a patch and fails at start-up, with
what to re-read, when an upgrade changes it.
"""

from __future__ import annotations

from aioapns import connection as apns_connection
from faust.stores import base as faust_store
from faust.stores import rocksdb as faust_rocksdb
from faust.tables import base as faust_tables
from faust.tables import table as faust_table
from faust.transport import producer as faust_producer
from firebase_admin import messaging
from mode import supervisors
from mode.utils import collections as mode_collections

from patches.pin import require_unchanged

WORKS_AROUND = "firebase-admin, aioapns, mode and faust lack the public hooks named below"

LIBRARIES = {
    "firebase-admin": "7.7.0",
    "aioapns": "4.0",
    "mode-streaming": "0.7.1",
    "faust-streaming": "0.15.3",
}

# Who relies on what, and why there is no public way:
# - providers/fcm.py: messaging._MessagingService.encode_message turns a Message into the v1
#   JSON, which the provider POSTs over aiohttp (firebase-admin sends only through its own
#   blocking HTTP client).
# - providers/apns.py: pool.protocol_class chooses the host and port the pool dials
#   (aioapns 4.0 has no host/port argument; the sandbox and regional endpoints need one).
# - agents/supervision.py: RestartingSupervisor reads the supervisor's _please_wakeup,
#   _services and _index (mode's OneForOneSupervisor loses a wake-up that comes between two
#   waits and offers no hook to retry it); its stuck_actors, which agents/health.py's
#   liveness asks, reads the same _services and _index.
# - tables/user_attributes.py: scan reads the RocksDB store's per-partition databases
#   (Store._dbs, filled by _db_for_partition, emptied by revoke_partitions), skips its
#   offset_key like _visible_items does and decodes values with _decode_value (a table
#   iterates every active partition from the start; a campaign scans one, from a cursor).
# - tables/notify_table.py: NotifyTable replaces the lookup that ManagedUserDict.__getitem__
#   and FastUserDict.__getitem__ make (two store reads: ``in``, then the read) and overrides
#   Collection._on_changelog_sent, Faust's only hook on a changelog write's ack (no public
#   one exists to defer the persisted offset it writes).
# - tables/notify_table.py: NotifyTable.send_changelog puts a ChangelogWrite of its own into
#   the producer buffer in place of upstream's FutureMessage (Collection.send_changelog). It
#   relies on what the buffer and the table read of it: put() queues it as it is (without
#   producer_threaded), the buffer's task calls .message.channel.publish_message(fut,
#   wait=False) once per write, in order, and Table.on_key_set/on_key_del read only
#   .message.partition of send_changelog's answer. Faust offers no hook into its changelog
#   send.
# - streams/changelog_buffer.py: sets ProducerBuffer.max_messages, which wait_until_ebb reads
#   before every hand-off (a class attribute that no Faust setting reaches).
UPSTREAM = {
    "_MessagingService.encode_message": messaging._MessagingService.encode_message,
    "APNsBaseConnectionPool.__init__": apns_connection.APNsBaseConnectionPool.__init__,
    "APNsKeyConnectionPool._create_connection": (
        apns_connection.APNsKeyConnectionPool._create_connection
    ),
    "SupervisorStrategy.__init__": supervisors.SupervisorStrategy.__init__,
    "SupervisorStrategy.wakeup": supervisors.SupervisorStrategy.wakeup,
    "SupervisorStrategy._supervisor": supervisors.SupervisorStrategy._supervisor.fun,
    "SupervisorStrategy.restart_service": supervisors.SupervisorStrategy.restart_service,
    "SupervisorStrategy.insert": supervisors.SupervisorStrategy.insert,
    "rocksdb.Store._db_for_partition": faust_rocksdb.Store._db_for_partition,
    "rocksdb.Store.revoke_partitions": faust_rocksdb.Store.revoke_partitions,
    "rocksdb.Store._visible_items": faust_rocksdb.Store._visible_items,
    "Store._decode_value": faust_store.Store._decode_value,
    "ManagedUserDict.__getitem__": mode_collections.ManagedUserDict.__getitem__,
    "FastUserDict.__getitem__": mode_collections.FastUserDict.__getitem__,
    "Collection._on_changelog_sent": faust_tables.Collection._on_changelog_sent,
    "ProducerBuffer.wait_until_ebb": faust_producer.ProducerBuffer.wait_until_ebb,
    "Collection.send_changelog": faust_tables.Collection.send_changelog,
    "Table.on_key_set": faust_table.Table.on_key_set,
    "Table.on_key_del": faust_table.Table.on_key_del,
    "ProducerBuffer.put": faust_producer.ProducerBuffer.put,
    "ProducerBuffer._send_pending": faust_producer.ProducerBuffer._send_pending,
    "ProducerBuffer._handle_pending": faust_producer.ProducerBuffer._handle_pending.fun,
}

EXPECTED_SOURCE = {
    "_MessagingService.encode_message": "1d4240b9",
    "APNsBaseConnectionPool.__init__": "44373f02",
    "APNsKeyConnectionPool._create_connection": "5766d57d",
    "SupervisorStrategy.__init__": "3f9eea0f",
    "SupervisorStrategy.wakeup": "4c772552",
    "SupervisorStrategy._supervisor": "5fd90a32",
    "SupervisorStrategy.restart_service": "0300dfce",
    "SupervisorStrategy.insert": "b3ea0253",
    "rocksdb.Store._db_for_partition": "cb7e67d5",
    "rocksdb.Store.revoke_partitions": "3f85447a",
    "rocksdb.Store._visible_items": "545dc16a",
    "Store._decode_value": "5fe35164",
    "ManagedUserDict.__getitem__": "9fb8a44e",
    "FastUserDict.__getitem__": "eb240364",
    "Collection._on_changelog_sent": "60122c86",
    "ProducerBuffer.wait_until_ebb": "758dd574",
    "Collection.send_changelog": "3dd3884e",
    "Table.on_key_set": "a370e35c",
    "Table.on_key_del": "4f2900b2",
    "ProducerBuffer.put": "bf26dfbc",
    "ProducerBuffer._send_pending": "4a9d5f93",
    "ProducerBuffer._handle_pending": "78d64803",
}


def check() -> None:
    """Raises UpstreamChanged when a library or one of the functions above changed."""
    require_unchanged("patches/private_api.py", UPSTREAM, EXPECTED_SOURCE, LIBRARIES)
