"""An emulator of the parts of Genesys Cloud that recsync uses.

It serves OAuth client credentials, the recording metadata and batch download
endpoints, the notification service with WebSocket channels, per-client rate limits
and injected faults for several orgs whose recordings propagate from a primary to
satellites with a delay. Every duration is in platform seconds and one time scale
maps them to wall time.
"""

from recsync.emulator.app import create_app
from recsync.emulator.clock import Clock, FakeClock, ScaledClock
from recsync.emulator.loading import (
    default_scenario,
    load_scenario,
    scenario_by_name,
    shipped_scenario_names,
)
from recsync.emulator.scenario import (
    FaultSpec,
    OrgSpec,
    Propagation,
    Scenario,
    ScenarioError,
)
from recsync.emulator.server import EmulatorServer, run_emulator
from recsync.emulator.world import World

__all__ = [
    "Clock",
    "EmulatorServer",
    "FakeClock",
    "FaultSpec",
    "OrgSpec",
    "Propagation",
    "ScaledClock",
    "Scenario",
    "ScenarioError",
    "World",
    "create_app",
    "default_scenario",
    "load_scenario",
    "run_emulator",
    "scenario_by_name",
    "shipped_scenario_names",
]
