"""Loading: the guide's examples, overlays, human units, the shipped policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from guide_blocks import COPIES, GUIDE, blocks, extract, split_avoid
from sandbox.policy import CleanroomConfig, check_policy, effective_isolation

REPO = Path(__file__).resolve().parents[2]
BLOCKS = blocks()


def test_the_guide_has_the_blocks_we_test():
    kinds = [k for _, k, _ in BLOCKS]
    assert kinds.count("good") >= 9 and kinds.count("avoid") >= 2


def test_committed_copies_match_the_live_guide():
    if not GUIDE.is_file():
        pytest.skip(f"{GUIDE} not present in this checkout; the committed copies were tested instead")
    live = [t for _, t in extract(GUIDE.read_text())]
    copies = [p.read_text() for p in sorted(COPIES.glob("*.toml"))]
    assert live == copies


@pytest.mark.parametrize("ident,kind,text", [b for b in BLOCKS if b[1] == "good"], ids=lambda v: v if isinstance(v, str) and v.startswith("guide") else "")
def test_every_good_block_loads_unchanged_with_no_warning(ident, kind, text):
    cfg = CleanroomConfig.from_toml(text, file=ident)
    assert check_policy(cfg) == []


AVOID = [(f"{i}-{n}", alt) for i, k, t in BLOCKS if k == "avoid" for n, alt in enumerate(split_avoid(t))]


@pytest.mark.parametrize("ident,text", AVOID, ids=[a[0] for a in AVOID])
def test_every_avoid_example_loads(ident, text):
    # An Avoid block may show two alternatives under one header ("too restrictive",
    # "too permissive"); each alternative is its own example.
    CleanroomConfig.from_toml(text, file=ident)


def test_guide_values_arrive_typed():
    good = [t for _, k, t in BLOCKS if k == "good"]
    cfg = CleanroomConfig.from_toml(good[0])
    assert cfg.enable_singleton_containers is True
    assert cfg.container_startup_timeout == 120
    assert cfg.deterministic_seed == 42
    assert cfg.resource_limits.max_memory_usage_bytes == 8589934592
    assert cfg.security_policy.allowed_ports == [5432, 6379, 8080]
    assert cfg.security_policy.redaction_patterns[0] == "password\\s*=\\s*[^\\s]+"


def test_overlay_selected_by_argument_and_by_variable(monkeypatch):
    text = "[cleanroom]\ntest_execution_timeout = 300\n[cleanroom.dev]\ntest_execution_timeout = 180\n"
    assert CleanroomConfig.from_toml(text).test_execution_timeout == 300
    assert CleanroomConfig.from_toml(text, env="dev").test_execution_timeout == 180
    monkeypatch.setenv("CLEANROOM_ENV", "dev")
    cfg = CleanroomConfig.from_toml(text)
    assert cfg.test_execution_timeout == 180 and cfg.environment == "dev"


def test_overlay_deep_merges_nested_tables():
    text = (
        "[cleanroom.resource_limits]\nmax_container_count = 10\nmax_cpu_usage_percent = 70.0\n"
        "[cleanroom.prod.resource_limits]\nmax_container_count = 50\n"
    )
    cfg = CleanroomConfig.from_toml(text, env="prod")
    assert cfg.resource_limits.max_container_count == 50
    assert cfg.resource_limits.max_cpu_usage_percent == 70.0  # kept from the base


def test_human_sizes_and_durations():
    cfg = CleanroomConfig.from_toml(
        '[cleanroom]\ntest_execution_timeout = "5m"\n[cleanroom.resource_limits]\nmax_memory_usage_bytes = "8GiB"\n'
        'max_disk_usage_bytes = "100GB"\n'
    )
    assert cfg.test_execution_timeout == 300
    assert cfg.resource_limits.max_memory_usage_bytes == 8 * 1024**3
    assert cfg.resource_limits.max_disk_usage_bytes == 100 * 1000**3


@pytest.mark.parametrize("name", ["default", "strict", "ci"])
def test_shipped_policies_load_without_warnings(name):
    cfg = CleanroomConfig.from_file(REPO / "policies" / f"{name}.toml")
    assert check_policy(cfg) == []
    assert cfg.source_file.endswith(f"{name}.toml")


def test_strict_policy_is_maximum_isolation():
    cfg = CleanroomConfig.from_file(REPO / "policies" / "strict.toml")
    iso = effective_isolation(cfg.security_policy)
    assert iso.network_mode == "none"
    assert iso.read_only_root and iso.drop_all_capabilities and iso.allowed_capabilities == ()
    assert iso.no_new_privileges


def test_presets_and_explicit_overrides():
    def iso(text):
        return effective_isolation(CleanroomConfig.from_toml("[cleanroom.security_policy]\n" + text).security_policy)

    assert iso('security_level = "Minimal"').read_only_root is False
    assert iso('security_level = "Minimal"').drop_all_capabilities is False
    assert iso('security_level = "High"').allowed_capabilities == ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID")
    assert iso('security_level = "Maximum"\nread_only_root = false').read_only_root is False
    assert iso('security_level = "Maximum"\nallowed_capabilities = ["cap_kill"]').allowed_capabilities == ("KILL",)
    assert iso("enable_filesystem_isolation = false").read_only_root is False
    assert iso("enable_network_isolation = false").network_mode == "egress"


def test_digest_is_stable_and_ignores_origin():
    a = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = true\n", file="a.toml")
    b = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = true\n", file="b.toml")
    c = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = false\n")
    assert a.digest() == b.digest() != c.digest()
