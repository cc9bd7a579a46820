"""The recsync plugin for the AppFoundry integration host."""

from recsync.plugin.plugin import RecsyncPlugin

__all__ = ["RecsyncPlugin"]
