"""security_level presets and explicit keys over them (effective_isolation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.policy import CleanroomConfig, Isolation, effective_isolation

REPO = Path(__file__).resolve().parents[2]
SHIPPED = str(REPO / "sandbox" / "confine" / "seccomp" / "baseline-x86_64.json")


def iso(text: str = "") -> Isolation:
    return effective_isolation(CleanroomConfig.from_toml("[cleanroom.security_policy]\n" + text).security_policy)


# level → (read-only root, drop ALL, capabilities kept, no-new-privileges)
PRESETS = {
    "Minimal": (False, False, (), False),
    "Low": (False, True, None, True),  # a generous list, checked below
    "Medium": (True, True, ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "NET_BIND_SERVICE", "KILL"), True),
    "High": (True, True, ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"), True),
    "Maximum": (True, True, (), True),
}


@pytest.mark.parametrize("level", PRESETS)
def test_each_level_presets_isolation(level):
    ro, drop, caps, nnp = PRESETS[level]
    got = iso(f'security_level = "{level}"')
    assert (got.read_only_root, got.drop_all_capabilities, got.no_new_privileges) == (ro, drop, nnp)
    if caps is not None:
        assert got.allowed_capabilities == caps
    assert got.seccomp_profile == "default" and got.network_mode == "none"


def test_low_keeps_more_than_medium():
    assert set(iso('security_level = "Medium"').allowed_capabilities) < set(iso('security_level = "Low"').allowed_capabilities)


def test_default_level_is_high():
    assert iso() == iso('security_level = "High"')


# (explicit keys, attribute, expected) – each explicit key wins over the Maximum preset
OVERRIDES = [
    ("read_only_root = false", "read_only_root", False),
    ("drop_all_capabilities = false", "drop_all_capabilities", False),
    ('allowed_capabilities = ["cap_kill", "NET_BIND_SERVICE"]', "allowed_capabilities", ("KILL", "NET_BIND_SERVICE")),
    ("no_new_privileges = false", "no_new_privileges", False),
    # A user's own profile must exist (checked at load): a shipped one stands in for it here.
    (f'seccomp_profile = "{SHIPPED}"', "seccomp_profile", SHIPPED),
    ('network_mode = "egress"', "network_mode", "egress"),
]


@pytest.mark.parametrize("keys,attr,expected", OVERRIDES, ids=[o[1] for o in OVERRIDES])
def test_explicit_key_overrides_the_preset(keys, attr, expected):
    assert getattr(iso(f'security_level = "Maximum"\n{keys}'), attr) == expected


def test_minimal_can_be_tightened_explicitly():
    got = iso('security_level = "Minimal"\nread_only_root = true\nno_new_privileges = true')
    assert got.read_only_root and got.no_new_privileges and not got.drop_all_capabilities


def test_filesystem_isolation_off_means_writable_root_whatever_the_level():
    assert iso('security_level = "Maximum"\nenable_filesystem_isolation = false').read_only_root is False
    assert iso('enable_filesystem_isolation = false\nread_only_root = true').read_only_root is False


def test_network_mode_follows_isolation_unless_maximum():
    assert iso("enable_network_isolation = false").network_mode == "egress"
    # Maximum keeps the network off even with isolation switched off; only an explicit
    # network_mode opens it.
    assert iso('security_level = "Maximum"\nenable_network_isolation = false').network_mode == "none"
    assert iso('network_mode = "allowlist"\nallowed_addresses = ["192.0.2.0/24"]').network_mode == "allowlist"


def test_strict_policy_is_maximum_isolation():
    cfg = CleanroomConfig.from_file(REPO / "policies" / "strict.toml")
    got = effective_isolation(cfg.security_policy)
    assert got.network_mode == "none"
    assert got.read_only_root and got.drop_all_capabilities and got.allowed_capabilities == ()
    assert got.no_new_privileges
