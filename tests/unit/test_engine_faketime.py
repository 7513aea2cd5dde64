"""deterministic_clock → a read-only libfaketime mount and its preload, in the create spec."""

from __future__ import annotations

import pytest

from sandbox.engine import faketime
from sandbox.engine.spec import build_spec
from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig

IMG = "localhost/cleanroom/services:bookworm"
CLOCK = 'enable_deterministic_execution = true\ndeterministic_clock = "2026-01-01T00:00:00Z"\n'


def cfg(text: str) -> CleanroomConfig:
    return CleanroomConfig.from_toml("[cleanroom]\n" + text)


def test_the_clock_is_a_read_only_preloaded_library_frozen_at_the_instant():
    spec = build_spec(cfg(CLOCK), IMG, ["date"], env={"USER_VAR": "1"})
    mount = next(m for m in spec["mounts"] if m["destination"] == faketime.SANDBOX_PATH)
    assert mount["type"] == "bind" and "ro" in mount["options"] and mount["source"].endswith("libfaketime.so.1")
    env = spec["env"]
    assert env["LD_PRELOAD"] == faketime.SANDBOX_PATH and env["FAKETIME_FMT"] == "%s"
    assert env["FAKETIME"] == "1767225600" and env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    assert env["TZ"] == "UTC" and env["USER_VAR"] == "1"
    assert any(m["destination"] == "/tmp" for m in spec["mounts"])  # the tmpfs mounts stay


def test_offsets_are_honoured_and_services_keep_the_real_clock():
    assert faketime.epoch_seconds("2026-01-01T02:00:00+02:00") == 1767225600
    spec = build_spec(cfg(CLOCK), IMG, ["postgres"], clock=False)
    assert "LD_PRELOAD" not in spec["env"]
    assert all(m["destination"] != faketime.SANDBOX_PATH for m in spec["mounts"])


def test_without_the_key_there_is_no_clock():
    spec = build_spec(cfg("enable_deterministic_execution = true\n"), IMG, ["date"])
    assert "FAKETIME" not in spec["env"]


def test_a_malformed_instant_or_a_clock_without_determinism_is_refused_at_load():
    with pytest.raises(PolicyError, match="deterministic_clock"):
        cfg('enable_deterministic_execution = true\ndeterministic_clock = "tomorrow"\n')
    with pytest.raises(PolicyError, match="enable_deterministic_execution = true"):
        cfg('deterministic_clock = "2026-01-01T00:00:00Z"\n')


def test_a_host_without_libfaketime_is_told_what_to_install(monkeypatch):
    monkeypatch.setattr(faketime.os.path, "isfile", lambda p: False)
    with pytest.raises(PolicyError, match="apt-get install libfaketime") as info:
        build_spec(cfg(CLOCK), IMG, ["date"])
    assert info.value.key == "cleanroom.deterministic_clock"
