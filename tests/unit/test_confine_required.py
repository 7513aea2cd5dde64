"""enable_resource_monitoring: on, a host that cannot enforce cgroup limits refuses to
open an environment; off, it runs unconfined with a warning. (A real host without a
delegated subtree cannot be made here without breaking the others' runs, so the
driver lookup is replaced; the confiner's real behaviour is in tests/security.)"""

from __future__ import annotations

import pytest

import sandbox.confine as confine
from sandbox.errors import CleanroomError
from sandbox.policy import CleanroomConfig


@pytest.fixture
def no_cgroups(monkeypatch):
    monkeypatch.setattr(confine, "make_driver", lambda: None)


def confiners(toml: str = "") -> list:
    return confine.confiners_for(CleanroomConfig.from_toml(toml), "env-test", lambda *a, **k: None)


def test_on_without_cgroup_delegation_refuses_naming_the_key(no_cgroups):
    with pytest.raises(CleanroomError) as info:
        confiners()
    assert "enable_resource_monitoring = false" in str(info.value)


def test_off_without_cgroup_delegation_runs_unconfined(no_cgroups):
    made = confiners("[cleanroom.resource_limits]\nenable_resource_monitoring = false\n")
    assert not any(isinstance(c, confine.CgroupConfiner) for c in made)
