"""Apache Kafka from its jars: what the project's launcher must get right."""

from __future__ import annotations

from vvv_core.apache_kafka import cluster_id


def test_kraft_cluster_ids_never_read_as_an_option():
    ids = [cluster_id() for _ in range(5000)]  # one in 64 random ids starts with "-"
    assert not [i for i in ids if i.startswith("-")] and all(len(i) == 22 for i in ids)
