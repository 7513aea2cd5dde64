"""Loading: the guide's examples, overlays, human units, the shipped policies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from guide_blocks import COPIES, GUIDE, blocks, extract, split_avoid

from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig, check_policy

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
    assert CleanroomConfig.from_toml(text, overlay="dev").test_execution_timeout == 180
    monkeypatch.setenv("CLEANROOM_ENV", "dev")
    cfg = CleanroomConfig.from_toml(text)
    assert cfg.test_execution_timeout == 180 and cfg.environment == "dev"


def test_overlay_deep_merges_nested_tables():
    text = (
        "[cleanroom.resource_limits]\nmax_container_count = 10\nmax_cpu_usage_percent = 70.0\n"
        "[cleanroom.prod.resource_limits]\nmax_container_count = 50\n"
    )
    cfg = CleanroomConfig.from_toml(text, overlay="prod")
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


def _shipped() -> list[tuple[str, str | None]]:
    """Every shipped policy, with no overlay and with each overlay it defines."""
    out = []
    for path in sorted((REPO / "policies").glob("*.toml")):
        out.append((path.stem, None))
        out += [(path.stem, env) for env in re.findall(r"^\[cleanroom\.(\w+)\]", path.read_text(), re.M)
                if env not in ("resource_limits", "security_policy", "performance_monitoring")]
    return out


@pytest.mark.parametrize("name,env", _shipped())
def test_shipped_policies_load_without_warnings(name, env):
    cfg = CleanroomConfig.from_file(REPO / "policies" / f"{name}.toml", overlay=env)
    assert check_policy(cfg) == []
    assert cfg.source_file.endswith(f"{name}.toml") and cfg.environment == env


def test_ci_policy_has_what_ci_needs():
    cfg = CleanroomConfig.from_file(REPO / "policies" / "ci.toml")
    sp = cfg.security_policy
    assert cfg.enable_singleton_containers and sp.allowed_ports == [5432, 6379]
    assert sp.enable_data_redaction and sp.audit_level == "High"
    assert cfg.resource_limits.sandbox.memory_bytes == 2**30
    assert CleanroomConfig.from_file(REPO / "policies" / "ci.toml", overlay="dev").container_startup_timeout == 60


def test_strict_policy_is_tight():
    sb = CleanroomConfig.from_file(REPO / "policies" / "strict.toml").resource_limits.sandbox
    assert (sb.memory_bytes, sb.pids_limit, sb.cpu_percent) == (256 * 2**20, 128, 100.0)


def test_digest_is_stable_and_ignores_origin():
    a = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = true\n", file="a.toml")
    b = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = true\n", file="b.toml")
    c = CleanroomConfig.from_toml("[cleanroom]\nenable_tracing = false\n")
    assert a.digest() == b.digest() != c.digest()


def _copies() -> list[tuple[str, str]]:
    return [(p.stem, p.read_text()) for p in sorted(COPIES.glob("*-good.toml"))]


@pytest.mark.parametrize("ident,text", _copies(), ids=[c[0] for c in _copies()])
def test_committed_good_copies_load_with_no_warning(ident, text):
    # Runs even when the live guide is present, so a checkout without ../shared is
    # known to work before it happens.
    assert check_policy(CleanroomConfig.from_toml(text, file=ident)) == []


def test_default_is_exactly_the_shipped_default_file():
    shipped = CleanroomConfig.from_file(REPO / "policies" / "default.toml")
    assert CleanroomConfig.default().digest() == shipped.digest()
    assert CleanroomConfig.default().source_file is None


OVERLAID = """
[cleanroom]
test_execution_timeout = 300
[cleanroom.resource_limits]
max_container_count = 10
[cleanroom.resource_limits.sandbox]
memory_bytes = "512MiB"
pids_limit = 256
[cleanroom.security_policy]
allowed_ports = [5432, 6379]

[cleanroom.dev]
test_execution_timeout = 60
[cleanroom.dev.resource_limits.sandbox]
memory_bytes = "1GiB"

[cleanroom.prod.security_policy]
allowed_ports = [8080]
"""

# env → (timeout, container count, sandbox memory, pids, ports)
SELECTED = {
    None: (300, 10, 512 * 2**20, 256, [5432, 6379]),
    "dev": (60, 10, 2**30, 256, [5432, 6379]),
    "prod": (300, 10, 512 * 2**20, 256, [8080]),  # lists replace, they do not append
}


@pytest.mark.parametrize("env", SELECTED)
def test_overlay_selection_and_deep_merge(env, monkeypatch):
    monkeypatch.delenv("CLEANROOM_ENV", raising=False)
    cfg = CleanroomConfig.from_toml(OVERLAID, overlay=env)
    rl = cfg.resource_limits
    got = (cfg.test_execution_timeout, rl.max_container_count, rl.sandbox.memory_bytes, rl.sandbox.pids_limit,
           cfg.security_policy.allowed_ports)
    assert got == SELECTED[env] and cfg.environment == env


def test_empty_env_means_no_overlay(monkeypatch):
    monkeypatch.setenv("CLEANROOM_ENV", "")
    assert CleanroomConfig.from_toml(OVERLAID).environment is None
    assert CleanroomConfig.from_toml(OVERLAID, overlay="").test_execution_timeout == 300


def test_unknown_env_from_the_variable_lists_the_overlays(monkeypatch):

    monkeypatch.setenv("CLEANROOM_ENV", "qa")
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(OVERLAID, file="p.toml")
    assert "'qa'" in str(info.value) and "dev, prod" in info.value.allowed


def test_overlay_may_rely_on_the_base_for_cross_key_rules():
    # Alone, this overlay breaks "swap >= memory" (default memory is 512 MiB) and
    # "allowlist needs addresses"; merged over its base it is fine.
    text = (
        '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "128MiB"\n'
        '[cleanroom.security_policy]\nallowed_addresses = ["192.0.2.0/24"]\n'
        '[cleanroom.ci.resource_limits.sandbox]\nmemory_swap_bytes = "256MiB"\n'
        '[cleanroom.ci.security_policy]\nnetwork_mode = "allowlist"\n'
    )
    cfg = CleanroomConfig.from_toml(text, overlay="ci")
    assert cfg.resource_limits.sandbox.memory_swap_bytes == 256 * 2**20
    assert cfg.security_policy.network_mode == "allowlist"


def test_overlay_changes_the_digest():
    assert CleanroomConfig.from_toml(OVERLAID).digest() != CleanroomConfig.from_toml(OVERLAID, overlay="dev").digest()


def test_loaded_policy_is_frozen_but_can_be_copied_with_changes():
    cfg = CleanroomConfig.default()
    with pytest.raises(AttributeError):
        cfg.enable_tracing = True  # type: ignore[misc]
    assert cfg.with_changes(enable_tracing=True).enable_tracing is True


def test_empty_file_is_the_default_policy():
    assert CleanroomConfig.from_toml("").digest() == CleanroomConfig.default().digest()
