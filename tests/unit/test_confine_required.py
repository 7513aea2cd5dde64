"""A host that cannot enforce cgroup limits refuses to open an environment, unless the
policy opts out with allow_unconfined (refused at High and above), which is audited. (A real host without a
delegated subtree cannot be made here without breaking the others' runs, so the
driver lookup is replaced; the confiner's real behaviour is in tests/security.)"""

from __future__ import annotations

import pytest

import sandbox.confine as confine
from sandbox.errors import CleanroomError, PolicyError
from sandbox.policy import CleanroomConfig


@pytest.fixture
def no_cgroups(monkeypatch):
    monkeypatch.setattr(confine, "make_driver", lambda: None)


def confiners(toml: str = "") -> list:
    return confine.confiners_for(CleanroomConfig.from_toml(toml), "env-test", lambda *a, **k: None,
                                 size_of=lambda cid: 0, kill=lambda cid: None)


def test_without_cgroup_delegation_an_environment_refuses_naming_the_fix(no_cgroups):
    for toml in ("", "[cleanroom.resource_limits]\nenable_resource_monitoring = false\n"):
        with pytest.raises(CleanroomError) as info:
            confiners(toml)
        assert "cleanroom doctor" in str(info.value) and "allow_unconfined = true" in str(info.value)


def test_allow_unconfined_runs_without_limits_and_says_so(no_cgroups):
    audit = []
    made = confine.confiners_for(
        CleanroomConfig.from_toml('[cleanroom.security_policy]\nsecurity_level = "Medium"\nallow_unconfined = true\n'),
        "env-test", lambda event, level, **data: audit.append((event, data)), size_of=lambda cid: 0,
        kill=lambda cid: None)
    assert not any(isinstance(c, confine.CgroupConfiner) for c in made)
    assert any(isinstance(c, confine.NetworkConfiner) for c in made)  # network rules still hold
    assert [e for e, _ in audit] == ["environment.unconfined"]


@pytest.mark.parametrize("level", ["High", "Maximum"])
def test_allow_unconfined_is_refused_at_high_and_above(level):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(f'[cleanroom.security_policy]\nsecurity_level = "{level}"\nallow_unconfined = true\n')
    assert info.value.key == "cleanroom.security_policy.allow_unconfined"
