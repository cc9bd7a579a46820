"""The reference host: entry-point loading, broken plugins, lifecycle."""

from __future__ import annotations

from typing import Any

import pytest

from recsync.hooks import Host, hookimpl
from recsync.hooks import host as host_module


class Recorder:
    """A plugin that records every lifecycle hook it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def appfoundry_manifest_loaded(self, manifest: Any) -> None:
        self.calls.append(("loaded", manifest))

    @hookimpl
    def appfoundry_install(self, manifest: Any, org_id: str) -> None:
        self.calls.append(("install", org_id))

    @hookimpl
    def appfoundry_activate(self, manifest: Any, org_id: str) -> None:
        self.calls.append(("activate", org_id))

    @hookimpl
    def appfoundry_deactivate(self, manifest: Any, org_id: str) -> None:
        self.calls.append(("deactivate", org_id))


class BadPlugin:
    @hookimpl
    def appfoundry_install(self, manifest: Any, org_id: str, extra: int) -> None:
        """Takes an argument no hook provides."""


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.target = target

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


class Org:
    def __init__(self, org_id: str) -> None:
        self.id = org_id


class Manifest:
    orgs = (Org("org-a"), Org("org-b"))


def test_host_fires_lifecycle_in_order():
    host = Host()
    recorder = Recorder()
    host.register(recorder, name="recorder")
    host.start(Manifest())
    host.stop(Manifest())
    names = [name for name, _ in recorder.calls]
    assert names == [
        "loaded",
        "install",
        "activate",
        "install",
        "activate",
        "deactivate",
        "deactivate",
    ]


def test_host_rejects_plugin_that_does_not_fit():
    host = Host()
    with pytest.raises(ValueError) as caught:
        host.register(BadPlugin(), name="bad")
    assert "bad" in str(caught.value)
    assert "extra" in str(caught.value)


def test_broken_plugin_does_not_stop_others(monkeypatch):
    recorder = Recorder()
    points = [
        FakeEntryPoint("broken", ImportError("no module named nowhere")),
        FakeEntryPoint("misfit", BadPlugin),
        FakeEntryPoint("good", recorder),
    ]
    monkeypatch.setattr(host_module, "entry_points", lambda group: points)
    host = Host()
    loaded = host.load_entry_points()
    assert loaded == ["good"]
    assert [p.name for p in host.problems] == ["broken", "misfit"]
    assert "no module named nowhere" in host.problems[0].error


def test_recsync_plugin_is_an_entry_point():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="appfoundry.plugins")}
    assert names["recsync"] == "recsync.plugin:RecsyncPlugin"


def test_public_names():
    import recsync

    assert set(recsync.__all__) == {
        "AuthenticationError",
        "CircuitOpen",
        "InvalidResponse",
        "Manifest",
        "ManifestError",
        "NotFound",
        "NotYet",
        "PlatformError",
        "PlatformPending",
        "PlatformUnavailable",
        "RateLimited",
        "Record",
        "RecordStore",
        "RecsyncError",
        "RecsyncPlugin",
        "State",
        "load_manifest",
        "manifest_from_mapping",
    }
    for name in recsync.__all__:
        assert hasattr(recsync, name), name


class Second(Recorder):
    pass


def test_invalid_manifest_keeps_others_running(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\norgs: []\n")
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: 1\n"
        "orgs:\n"
        "  - id: org-a\n"
        "    region: us-east-1\n"
        "    role: primary\n"
        "    credentials: {client_id_env: A_ID, client_secret_env: A_SECRET}\n"
    )
    host = Host()
    first, second = Recorder(), Second()
    host.register(first, name="first")
    host.register(second, name="second")

    rejected = host.start_plugin("first", bad)
    accepted = host.start_plugin("second", good)

    assert rejected is None
    assert first.calls == []
    assert host.problems[0].name == "first"
    assert "orgs" in host.problems[0].error
    assert accepted is not None
    assert [name for name, _ in second.calls] == ["loaded", "install", "activate"]


def test_configuration_change_adds_org_to_runtime(fake_redis, monkeypatch):
    from recsync import runtime as runtime_module
    from recsync.manifest import manifest_from_mapping
    from recsync.plugin import RecsyncPlugin
    from recsync.runtime import Runtime

    def org(org_id: str, role: str) -> dict:
        return {
            "id": org_id,
            "region": "us-east-1",
            "role": role,
            "credentials": {
                "client_id_env": f"{org_id.upper()[-1]}_ID",
                "client_secret_env": f"{org_id.upper()[-1]}_SECRET",
            },
        }

    old = manifest_from_mapping({"version": 1, "orgs": [org("org-a", "primary")]})
    new = manifest_from_mapping(
        {"version": 1, "orgs": [org("org-a", "primary"), org("org-b", "satellite")]}
    )
    sent: list[tuple[str, str]] = []

    class Dispatcher:
        def subscribe(self, org_id, **kwargs):
            sent.append(("subscribe", org_id))

        def reconcile(self, org_id):
            sent.append(("reconcile", org_id))

        def fetch(self, org_id, recording_id, **kwargs):
            sent.append(("fetch", org_id))

    plugin = RecsyncPlugin(Runtime(old, fake_redis))
    monkeypatch.setattr(RecsyncPlugin, "_dispatcher", staticmethod(Dispatcher))
    plugin.appfoundry_configuration_changed(old=old, new=new)
    plugin.track("org-b", "conv-1", "rec-1")

    assert plugin.runtime.org_ids() == ["org-a", "org-b"]
    assert ("reconcile", "org-b") in sent
    assert ("fetch", "org-b") in sent
    runtime_module.install(None)
