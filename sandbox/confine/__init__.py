"""Confinement: cgroup limits (and network rules) applied after init, before start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.errors import CleanroomError

try:  # a broken install must stop here, loudly: never sandboxes without limits or network rules
    from sandbox.confine.cgroups import CgroupError, detect_version, make_driver
    from sandbox.confine.disk import DiskConfiner
    from sandbox.confine.limits import CgroupConfiner
    from sandbox.confine.netns import NetworkConfiner
    from sandbox.confine.owners import owner_alive, owner_record, prune_records
    from sandbox.confine.shared import GROUP as SHARED_GROUP
    from sandbox.confine.shared import prune as prune_shared
except ImportError as exc:
    raise CleanroomError(
        f"confinement cannot be applied: {exc.name or 'a module'} cannot be imported ({exc}); cleanroom will not "
        "run sandboxes without their cgroup limits and network rules. fix: reinstall cleanroom's dependencies "
        "(pip install 'cleanroom[test]' or scripts/setup-host.sh as root), then check with `cleanroom doctor`"
    ) from None

from sandbox.engine.types import AuditFn, Confiner  # noqa: E402  (after the guarded imports above)


def cgroup_driver_name() -> str:
    driver = make_driver()
    if driver is None:
        return "none (no cgroup filesystem)"
    if not driver.available():
        return f"{driver.version} (not delegated: run scripts/setup-host.sh)"
    return f"{driver.version} (delegated subtree)"


def confiners_for(config: Any, environment_id: str, audit: AuditFn, *, size_of: Callable[[str], int],
                  kill: Callable[[str], None]) -> list[Confiner]:
    """The confiners an environment runs its sandboxes through.

    Without a delegated cgroup subtree the limits cannot be enforced: that is an
    error, not a silent downgrade, unless the policy opts out explicitly with
    ``allow_unconfined`` (then the audit and every result say so). Network rules
    always apply; their modules are imported above, so a broken install fails here
    loudly instead of running sandboxes without them.
    """
    out: list[Confiner] = []
    driver = make_driver()
    if driver is not None and driver.available():
        out.append(CgroupConfiner(config, driver, environment_id=environment_id, audit=audit))
    elif not config.security_policy.allow_unconfined:
        raise CleanroomError(
            f"cgroup limits cannot be enforced on this host: {cgroup_driver_name()}. `cleanroom doctor` names "
            "the fix (as root, scripts/setup-host.sh delegates a cgroup subtree to this user); to run without "
            "limits anyway set security_policy.allow_unconfined = true (refused at High and Maximum)")
    else:
        logger.warning("cgroup limits not enforced: no delegated subtree", driver=cgroup_driver_name())
        audit("environment.unconfined", "Minimal", reason=f"no cgroup limits: {cgroup_driver_name()}")
    out.append(DiskConfiner(config, size_of=size_of, kill=kill, audit=audit))
    out.append(NetworkConfiner(config))
    return out


def prune_cgroups(include_live: bool = False) -> list[str]:
    """Remove environment cgroups whose owner process is gone (their sandboxes first),
    and the shared-services cgroups no singleton runs in any more."""
    driver = make_driver()
    removed: list[str] = []
    if driver is None or not driver.available():
        return removed
    for env_id in driver.children():
        if env_id == SHARED_GROUP:
            removed += prune_shared(driver)
            continue
        if not include_live and owner_alive(env_id):
            continue
        for child in driver.children(env_id):
            rel = f"{env_id}/{child}"
            if driver.tasks(rel):
                continue  # processes still run there: a container prune did not remove
            try:
                driver.remove(rel, timeout=1)
                removed.append(rel)
            except CgroupError:
                pass
        try:
            driver.remove(env_id, timeout=1)
            removed.append(env_id)
        except CgroupError:
            pass
    # Records of environments whose cgroup is gone (removed now, or by a close() that
    # could not unlink its record) would otherwise pile up in $XDG_RUNTIME_DIR.
    prune_records(set(driver.children()))
    return removed


def leftover_cgroups(parent_pid: int) -> list[str]:
    """Environment cgroups made by parent_pid or its direct children that still exist.

    After an environment closed, this must be empty: tests use it to check the host
    is unharmed without counting other, concurrent runs' live environments.
    """
    driver = make_driver()
    if driver is None or not driver.available():
        return []
    out = []
    for env_id in driver.children():
        rec = owner_record(env_id)
        if parent_pid not in (rec.get("pid"), rec.get("ppid")):
            continue
        # A closed environment keeps its cgroup only while a singleton it started runs
        # in it (kept for reuse on purpose); empty cgroups are the debris that counts.
        if any(driver.tasks(f"{env_id}/{child}") for child in driver.children(env_id)):
            continue
        out.append(env_id)
    return out


__all__ = ["confiners_for", "prune_cgroups", "cgroup_driver_name", "detect_version", "CgroupConfiner",
           "owner_record", "leftover_cgroups", "DiskConfiner", "NetworkConfiner"]
