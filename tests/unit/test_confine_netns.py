"""The network verdict is decided from the kernel's read-back routes: these tables are
shaped like the ones read inside real slirp4netns and bridge namespaces."""

from __future__ import annotations

from sandbox.confine.netns import rule_problems


def row(dst: str, type_: str = "unicast", family: str = "inet", gateway: str | None = None) -> dict:
    return {"family": family, "dst": dst, "type": type_, "gateway": gateway, "oif": 2}


SLIRP = [
    row("default", gateway="10.0.2.2"),
    row("10.0.2.0/24"),
    row("fd00::/64", family="inet6"),
    row("fe80::/64", family="inet6"),
    row("default", family="inet6", gateway="fe80::2"),
    row("ff00::/8", "multicast", "inet6"),
]


def test_blocked_ranges_hold_only_with_their_unreachable_routes():
    routes = [*SLIRP, row("10.0.0.0/8", "unreachable"), row("fd00::/8", "unreachable", "inet6")]
    assert rule_problems(routes, ["10.0.0.0/8", "fd00::/8"], allowlist=False) == []
    assert rule_problems(SLIRP, ["10.0.0.0/8"], allowlist=False) == ["no unreachable route for blocked 10.0.0.0/8"]


def test_a_missing_ipv6_block_is_a_problem_where_ipv6_is_routed():
    routes = [*SLIRP, row("10.0.0.0/8", "unreachable")]
    assert rule_problems(routes, ["10.0.0.0/8", "fd00::/8"], False) == ["no unreachable route for blocked fd00::/8"]


def test_a_missing_ipv6_block_is_harmless_where_only_link_local_exists():
    v4_only = [row("default", gateway="10.0.2.2"), row("10.0.2.0/24"), row("fe80::/64", family="inet6"),
               row("ff00::/8", "multicast", "inet6"), row("10.0.0.0/8", "unreachable")]
    assert rule_problems(v4_only, ["10.0.0.0/8", "fd00::/8"], allowlist=False) == []


def test_blocked_cidrs_are_compared_normalised():
    routes = [*SLIRP, row("10.0.0.0/8", "prohibit")]
    assert rule_problems(routes, ["10.1.2.3/8"], allowlist=False) == []  # host bits ignored, prohibit counts


def test_allowlist_refuses_any_surviving_default_route():
    # What the first allow-list version left: v4 default gone, the v6 one from a router advertisement kept.
    leaky = [row("default", "unreachable"), row("10.0.2.0/24"), row("10.0.2.2/32", gateway="10.0.2.2"),
             row("fd00::/64", family="inet6"), row("default", family="inet6", gateway="fe80::2")]
    problems = rule_problems(leaky, ["0.0.0.0/0", "::/0"], allowlist=True)
    assert any("default route survives" in p and "fe80::2" in p for p in problems)
    assert "no unreachable route for blocked ::/0" in problems
    fixed = [r for r in leaky if r["gateway"] != "fe80::2"] + [row("default", "unreachable", "inet6")]
    assert rule_problems(fixed, ["0.0.0.0/0", "::/0"], allowlist=True) == []
