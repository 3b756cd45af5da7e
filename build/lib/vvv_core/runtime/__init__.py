"""The consumer runtime, written once and shared by every consumer group."""

from vvv_core.runtime.executors import BatchExecutor, ConcurrentExecutor, Executor
from vvv_core.runtime.group import ConsumerGroup
from vvv_core.runtime.model import Checked, Failure, Inbound, Outcome
from vvv_core.runtime.runner import ConsumerStopped, GroupRunner

__all__ = [
    "BatchExecutor",
    "Checked",
    "ConcurrentExecutor",
    "ConsumerGroup",
    "ConsumerStopped",
    "Executor",
    "Failure",
    "GroupRunner",
    "Inbound",
    "Outcome",
]
