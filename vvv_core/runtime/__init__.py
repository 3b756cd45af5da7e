"""The consumer runtime, written once and shared by every consumer group.

- ``loop.py`` drives a member: poll, decode, work, checkpoint;
- ``checkpoint.py`` owns the commit order (SQLite → results and state changes →
  acknowledgements → offsets), exactly-once included;
- ``deadletter.py`` owns the dead-letter policy;
- ``backends/`` hide the client: ``kafka.py`` wraps confluent-kafka with the member's broker
  differences (the admin side's are in ``vvv_core/kafka.py``), ``memory.py`` runs the runtime
  without a broker;
- ``executors.py`` runs the work (a batch at once, or concurrent checks with retries, each
  video's events in order); ``group.py`` is what a group declares;
- ``state/`` keeps a group's state where it declares one (``stateful``): a local store per input
  partition, every change to a compacted changelog, restored on assignment.

What a group declares is exported here; the loop is imported from ``vvv_core.runtime.loop``,
since it brings the metrics (prometheus-client, part of the ``consumers`` extra) with it.
"""

from vvv_core.runtime.executors import BatchExecutor, ConcurrentExecutor, Executor
from vvv_core.runtime.group import ConsumerGroup, EffectGroup, Groups
from vvv_core.runtime.model import Checked, ConsumerStopped, Failure, Inbound, Outcome

__all__ = [
    "BatchExecutor",
    "Checked",
    "ConcurrentExecutor",
    "ConsumerGroup",
    "ConsumerStopped",
    "EffectGroup",
    "Executor",
    "Failure",
    "Groups",
    "Inbound",
    "Outcome",
]
