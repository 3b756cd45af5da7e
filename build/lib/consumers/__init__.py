"""The consumer groups, by name. Each module declares one group on the shared runtime."""

from __future__ import annotations

from consumers.liveness import LivenessGroup
from consumers.scoring import ScoringGroup
from consumers.thumbnails import ThumbnailGroup
from vvv_core.runtime import ConsumerGroup

GROUPS: dict[str, type[ConsumerGroup]] = {group.name: group for group in (ScoringGroup, ThumbnailGroup, LivenessGroup)}
