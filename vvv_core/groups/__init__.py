"""The consumer groups, by name: the plugins of the runtime. Each module declares one group.

Only the command line (the composition root) imports this registry; the core is handed it.
"""

from __future__ import annotations

from vvv_core.groups.liveness import LivenessGroup
from vvv_core.groups.scoring import ScoringGroup
from vvv_core.groups.sink import SinkGroup
from vvv_core.groups.thumbnails import ThumbnailGroup
from vvv_core.runtime import Groups

GROUPS: Groups = {group.name: group for group in (ScoringGroup, ThumbnailGroup, LivenessGroup, SinkGroup)}
