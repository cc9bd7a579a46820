"""Hook specifications, markers and the reference host."""

from recsync.hooks.host import ENTRY_POINT_GROUP, Host, LoadProblem
from recsync.hooks.markers import hookimpl, hookspec

__all__ = ["ENTRY_POINT_GROUP", "Host", "LoadProblem", "hookimpl", "hookspec"]
