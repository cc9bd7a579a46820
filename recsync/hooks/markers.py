"""pluggy markers for the AppFoundry host's plugin project."""

import pluggy

PROJECT = "appfoundry"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
