"""``vvv replay``: move a stopped group's committed offsets back, to process history again."""

from __future__ import annotations

import logging
from datetime import datetime

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from vvv_core import kafka
from vvv_core.config import Settings
from vvv_core.errors import Fatal
from vvv_core.runtime.group import ConsumerGroup

log = logging.getLogger(__name__)


class GroupActive(Fatal):
    """The group has members: offsets may only be reset while it is stopped."""


def target_offsets(settings: Settings, topic: str, since: datetime | None) -> dict[int, int]:
    """Per partition, the first offset whose record is at or after ``since`` (None: the beginning).

    The broker's time index is asked first (ListOffsets by time); its answer is used where the
    records on either side of it agree (Apache Kafka), else every record's timestamp is read
    (tansu answers by time wrongly).
    """
    marks = kafka.watermarks(settings, topic)
    if since is None:
        return {p: low for p, (low, _high) in marks.items()}
    cutoff = int(since.timestamp() * 1000)
    asked = kafka.offsets_for_time(settings, topic, cutoff, marks)
    if asked is not None and kafka.first_at_or_after(settings, topic, cutoff, asked, marks):
        log.info("offsets for %s from the broker's time index", since.isoformat())
        return asked
    log.info("the broker's time index disagrees with the records: reading every record's timestamp instead")
    first: dict[int, int] = {}
    for msg in kafka.read_topic(settings, topic, timeout=60):
        if msg.partition() not in first and msg.timestamp()[1] >= cutoff:
            first[msg.partition()] = msg.offset()
    return {p: first.get(p, high) for p, (_low, high) in marks.items()}


def replay(settings: Settings, group: type[ConsumerGroup], since: datetime | None) -> dict[int, tuple[int | None, int]]:
    """Reset ``group``'s offsets; return {partition: (old committed, new)}."""
    client = kafka.check_broker(settings)
    group_id = settings.group_id(group.name)
    members = kafka.group_members(settings, [group_id])[group_id]
    if members:
        raise GroupActive(
            f"group {group_id} has {len(members)} running members ({', '.join(members)}): stop "
            "them first (replay moves the offsets of a stopped group only)"
        )
    if members is None:  # Apache Kafka answers; the embedded broker never reports members
        log.warning("the broker did not report %s's members: make sure no member is running", group_id)
    topic = group.input_topic(settings)
    old = kafka.committed_offsets(settings, group_id, topic)
    new = target_offsets(settings, topic, since)
    request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p, o) for p, o in sorted(new.items())])
    try:
        client.alter_consumer_group_offsets([request])[group_id].result(15)
    except KafkaException as exc:  # Apache Kafka refuses while members are active
        raise GroupActive(
            f"the broker refused to move {group_id}'s offsets ({exc.args[0].str()}): is the group still running?"
        ) from None
    return {p: (old.get(p), o) for p, o in sorted(new.items())}
