"""The rule made permanent: every key of the policy schema has an effect and a test
that proves it, or is listed as accepted-not-enforced and reported by `policy check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from guide_blocks import blocks

from sandbox.policy import CleanroomConfig
from sandbox.policy.effects import EFFECTS, NOT_ENFORCED, markdown_table, not_enforced, schema_keys

REPO = Path(__file__).resolve().parents[2]
PROOFS = sorted({(key, node) for key, e in EFFECTS.items() for node in e.proven_by})


def test_the_walk_reaches_nested_tables():
    keys = schema_keys()
    assert "resource_limits.sandbox.memory_bytes" in keys
    assert "performance_monitoring.thresholds.max_container_startup_time" in keys
    assert "resource_limits" not in keys and "source_file" not in keys  # tables and origin are not keys
    assert len(keys) == len(set(keys))


def test_every_key_is_classified_exactly_once():
    keys = set(schema_keys())
    unclassified = keys - set(EFFECTS) - set(NOT_ENFORCED)
    assert not unclassified, f"keys with neither an effect nor a not-enforced entry: {sorted(unclassified)}"
    assert not set(EFFECTS) & set(NOT_ENFORCED)
    assert not (set(EFFECTS) | set(NOT_ENFORCED)) - keys, "entries for keys the schema does not have"


def test_every_effect_names_a_proving_test():
    assert all(e.proven_by and e.effect for e in EFFECTS.values())


@pytest.mark.parametrize("key,node", PROOFS, ids=[f"{k}->{n.split('::')[1]}" for k, n in PROOFS])
def test_each_proving_test_exists_and_mentions_the_key(key, node):
    path, name = node.split("::")
    source = (REPO / path).read_text()
    assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), f"{node} is not defined"
    # The test (or a policy file it loads) must set the key it proves.
    for policy in re.findall(r'"policies" / "(\w+)\.toml"|policies/(\w+)\.toml', source):
        source += (REPO / "policies" / f"{policy[0] or policy[1]}.toml").read_text()
    leaf = key.rsplit(".", 1)[-1]
    assert leaf in source, f"{node} never mentions {leaf}"


def test_defaults_report_nothing_not_enforced():
    assert not_enforced(CleanroomConfig.default()) == []


def _value(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def test_each_not_enforced_key_set_away_from_its_default_is_reported(monkeypatch):
    prod = next(t for _, k, t in blocks() if k == "good" and "max_disk_usage_bytes" in t and "enable_tracing" in t)
    cfg, default = CleanroomConfig.from_toml(prod), CleanroomConfig.default()
    expected = {f"cleanroom.{k}" for k in NOT_ENFORCED if _value(cfg, k) != _value(default, k)}
    reported = {n.key for n in not_enforced(cfg)}
    assert reported == expected
    # Made real by issue 12 (snapshots, then coverage): no longer reported.
    assert not {"cleanroom.enable_snapshot_testing", "cleanroom.enable_coverage_tracking"} & reported
    # Issue 11 made monitoring, tracing and thresholds real: they are no longer reported.
    assert not {k for k in reported if "performance_monitoring" in k or k == "cleanroom.enable_tracing"}
    # The mechanism, whatever the list holds today: stand-in entries for a key the file sets
    # away from its default (named) and one it leaves at its default (not named).
    at_default = next(k for k in schema_keys() if _value(cfg, k) == _value(default, k))
    monkeypatch.setitem(NOT_ENFORCED, "enable_coverage_tracking", "stand-in")
    monkeypatch.setitem(NOT_ENFORCED, at_default, "stand-in")
    notices = not_enforced(cfg)
    assert {n.key for n in notices} == expected | {"cleanroom.enable_coverage_tracking"}
    assert all(n.message.startswith("accepted, not yet enforced") for n in notices)


def test_a_key_at_its_default_is_not_reported():
    cfg = CleanroomConfig.from_toml('[cleanroom.resource_limits]\nmax_disk_usage_bytes = "100GiB"\n')
    assert not_enforced(cfg) == []


README_BEGIN, README_END = "<!-- policy-keys:begin -->\n", "<!-- policy-keys:end -->"


def test_readme_key_table_is_the_effects_table():
    readme = (REPO / "README.md").read_text()
    assert README_BEGIN in readme, "README.md lacks the generated policy key table"
    table = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert table == markdown_table(), "regenerate with: python -m sandbox.policy.effects"
