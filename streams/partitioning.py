"""Which partition a key belongs on, computed the way Kafka's Java client and aiokafka do.

Tables are written on the partition of the event being processed. A producer that keys by
``user_id`` with a different partitioner (librdkafka's default is CRC32, not murmur2) would put a
user's records on a partition whose table shard does not hold that user; such records are
re-keyed through a ``*.by-user`` topic before any table is touched.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    hashed: int = murmur2(key.encode())  # aiokafka is untyped
    return (hashed & 0x7FFFFFFF) % partitions


def is_on_home_partition(key: str, partition: int, partitions: int) -> bool:
    return partition_for(key, partitions) == partition
