"""`cleanroom doctor` says what cgroup v1 placement costs on this host and how to cut it,
as a hint (never a failure): expedited RCU grace periods are the host's choice."""

from __future__ import annotations

from sandbox.cli.doctor_cmd import rcu_hint


def test_v1_with_normal_grace_periods_gets_the_optional_fix(tmp_path):
    knob = tmp_path / "rcu_expedited"
    knob.write_text("0\n")
    check = rcu_hint("v1", knob)
    assert check is not None and check.ok
    assert "grace period" in check.detail and f"echo 1 > {knob}" in check.fix and check.fix.startswith("optional")


def test_v1_with_expedited_grace_periods_says_so_without_a_fix(tmp_path):
    knob = tmp_path / "rcu_expedited"
    knob.write_text("1\n")
    check = rcu_hint("v1", knob)
    assert check is not None and check.ok and check.fix == "" and "rcu_expedited=1" in check.detail


def test_no_hint_on_cgroup_v2_or_without_the_knob(tmp_path):
    assert rcu_hint("v2", tmp_path / "rcu_expedited") is None
    assert rcu_hint("v1", tmp_path / "missing") is None
