"""Network rules inside a sandbox's own network namespace, applied after init.

A forked child (single-threaded, as setns into a user namespace requires) joins the
container's user namespace (we own it: no root needed), then its network namespace,
and uses pyroute2 there: blocked CIDRs become ``unreachable`` routes so the kernel
refuses them inside the sandbox and no packet leaves; an allow-list routes only the
listed CIDRs; a bandwidth limit is a tbf qdisc on the egress device. Everything is
read back and returned for the audit.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # imported before any fork: never import in the child

from sandbox.engine.types import ConfinerBase, SandboxHandle
from sandbox.errors import ContainerError
from sandbox.policy import effective_isolation

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_netns(pid: int, fn, *args) -> Any:
    """Run fn(*args) in a child that joined PID's user and network namespaces."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child; results come back by pipe
        status = 0
        try:
            os.close(r)
            if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                _setns(f"/proc/{pid}/ns/user", CLONE_NEWUSER)
            _setns(f"/proc/{pid}/ns/net", CLONE_NEWNET)
            out = {"ok": True, "result": fn(*args)}
        except BaseException as exc:  # everything goes back to the parent as data
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            status = 1
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(status)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(child, 0)
    try:
        out = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        out = {}
    if not out.get("ok"):
        raise OSError(out.get("error", "network helper died without a result"))
    return out["result"]


def interfaces(pid: int) -> list[str]:
    """Interface names of PID's network namespace, read without joining it."""
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


_ROUTE_TYPES = {1: "unicast", 5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
_REJECT = ("unreachable", "prohibit", "blackhole")


def _route_rows(ipr: IPRoute) -> list[dict[str, Any]]:
    rows = []
    for family, fname in ((socket.AF_INET, "inet"), (socket.AF_INET6, "inet6")):
        try:
            routes = ipr.get_routes(family=family, table=254)
        except Exception:
            continue
        for rt in routes:
            dst = rt.get_attr("RTA_DST")
            rows.append({
                "family": fname,
                "dst": f"{dst}/{rt['dst_len']}" if dst else ("default" if rt["dst_len"] == 0 else "?"),
                "type": _ROUTE_TYPES.get(rt["type"], rt["type"]),
                "gateway": rt.get_attr("RTA_GATEWAY"),
                "oif": rt.get_attr("RTA_OIF"),
            })
    return rows


def _stop_router_advertisements() -> None:
    """A router advertisement (slirp4netns sends them) would re-add an IPv6 default
    route after we removed it; the namespace's own sysctls turn them off."""
    conf = Path("/proc/sys/net/ipv6/conf")
    if not conf.is_dir():
        return  # IPv6 is off in this namespace: nothing to re-add
    for dev in conf.iterdir():
        try:
            (dev / "accept_ra").write_text("0")
        except OSError:
            pass  # read back below: a surviving default route refuses the sandbox


def _allow_only(ipr: IPRoute, allowed: list[str], facts: dict[str, Any]) -> None:
    """Route the listed networks through each family's gateway; refuse the rest."""
    _stop_router_advertisements()
    for family, default in ((socket.AF_INET, "0.0.0.0/0"), (socket.AF_INET6, "::/0")):
        version = 4 if family == socket.AF_INET else 6
        defaults = [rt for rt in ipr.get_routes(family=family, table=254)
                    if rt["dst_len"] == 0 and rt["type"] == 1]
        via = next(((rt.get_attr("RTA_GATEWAY"), rt.get_attr("RTA_OIF")) for rt in defaults
                    if rt.get_attr("RTA_GATEWAY")), None)
        for cidr in allowed:
            net = ipaddress.ip_network(cidr, strict=False)
            if net.version != version:
                continue
            if via is None:
                facts["errors"].append(f"{net}: no IPv{version} gateway to route it through")
                continue
            ipr.route("add", dst=str(net), gateway=via[0], oif=via[1], family=family)
            facts["allowed"].append(str(net))
        for rt in defaults:
            try:
                ipr.route("del", family=family, dst=default, gateway=rt.get_attr("RTA_GATEWAY"),
                          oif=rt.get_attr("RTA_OIF"), priority=rt.get_attr("RTA_PRIORITY"), table=254)
            except Exception as exc:
                facts["errors"].append(f"default route ({default}) not removed: {exc}")


def _apply(blocked: list[str], allowed: list[str] | None, rate: int | None) -> dict[str, Any]:
    """Runs inside the sandbox's namespaces."""
    facts: dict[str, Any] = {"blocked": [], "errors": []}
    with IPRoute() as ipr:
        links = {ln.get_attr("IFLA_IFNAME"): ln["index"] for ln in ipr.get_links()}
        egress = next((n for n in links if n != "lo"), None)
        if allowed is not None:
            facts["allowed"] = []
            _allow_only(ipr, allowed, facts)
            blocked = ["0.0.0.0/0", "::/0", *blocked]
        for cidr in blocked:
            net = ipaddress.ip_network(cidr, strict=False)
            family = socket.AF_INET if net.version == 4 else socket.AF_INET6
            try:
                ipr.route("add", dst=str(net), type="unreachable", family=family)
                facts["blocked"].append(str(net))
            except Exception as exc:
                # Judged after read-back: harmless only where the family is not routed at all.
                facts["errors"].append(f"{net}: {exc}")
        if rate and egress:
            # tbf: rate in bytes/s; a small burst keeps the measured rate close to it.
            ipr.tc("add", "tbf", index=links[egress], handle="1:", rate=rate,
                   burst=max(16 * 1024, rate // 20), latency="100ms")
            facts["shaped"] = {"device": egress, "bytes_per_sec": rate}
        facts["routes"] = _route_rows(ipr)
        facts["interfaces"] = sorted(links)
    return facts


def _family_routed(routes: list[dict[str, Any]], family: str) -> bool:
    """Whether anything beyond link-local/multicast is routed in this family."""
    for r in routes:
        if r.get("family", "inet") != family or r["type"] != "unicast":
            continue
        if family == "inet6" and r["dst"].startswith(("fe80:", "ff")):
            continue
        return True
    return False


def rule_problems(routes: list[dict[str, Any]], blocked: list[str], allowlist: bool) -> list[str]:
    """What the read-back routes fail to enforce; empty when the policy holds.

    Decided from the kernel's own table, not from what the helper meant to do.
    """
    problems = []
    reject = {(r.get("family", "inet"), r["dst"]) for r in routes if r["type"] in _REJECT}
    for cidr in blocked:
        net = ipaddress.ip_network(cidr, strict=False)
        family = "inet" if net.version == 4 else "inet6"
        dst = "default" if net.prefixlen == 0 else str(net)
        if (family, dst) not in reject and _family_routed(routes, family):
            problems.append(f"no unreachable route for blocked {net}")
    if allowlist:
        for r in routes:
            if r["dst"] == "default" and r["type"] == "unicast":
                problems.append(f"a default route survives the allow-list ({r.get('family')} via {r['gateway']})")
    return problems


class NetworkConfiner(ConfinerBase):
    """Applies the policy's network rules to each sandbox between init and start."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def after_init(self, handle: SandboxHandle) -> None:
        sp = self.config.security_policy
        mode = handle.network_mode
        try:
            if mode == "none":
                names = interfaces(handle.pid)
                if names != ["lo"]:
                    raise ContainerError(f"network isolation expected loopback only, found {names}",
                                         sandbox=handle.name)
                handle.facts["network"] = {"mode": "none", "interfaces": names}
                return
            allow = list(sp.allowed_addresses) if effective_isolation(sp).network_mode == "allowlist" else None
            rate = self.config.resource_limits.max_network_bandwidth_bytes_per_sec
            facts = run_in_netns(handle.pid, _apply, list(sp.blocked_addresses), allow, rate)
        except OSError as exc:
            raise ContainerError(f"network rules could not be applied, the sandbox was not started: {exc}",
                                 sandbox=handle.name) from None
        problems = rule_problems(facts["routes"], list(sp.blocked_addresses), allow is not None)
        if problems:
            raise ContainerError("network rules do not hold after read-back, the sandbox was not started: "
                                 + "; ".join(problems), sandbox=handle.name)
        facts["mode"] = "allowlist" if allow is not None else "egress"
        handle.facts["network"] = facts
