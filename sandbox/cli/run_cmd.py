"""`cleanroom run`: one confined sandbox, output streamed live and redacted."""

from __future__ import annotations

import os
import sys

import click
import msgspec

from sandbox.cli.common import EXIT_ENGINE, EXIT_POLICY, EXIT_TIMEOUT, die, load_config
from sandbox.cli.images_cmd import progress_bar
from sandbox.engine.mounts import parse_volume
from sandbox.environment import CleanroomEnvironment
from sandbox.errors import CleanroomError, EngineUnavailable, NetworkPolicyViolation, PolicyError, TimeoutExceeded


def _parse_env_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            die(f"--env-var expects K=V, got {pair!r}", EXIT_POLICY)
        out[key] = value
    return out


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _audit_where(env_obj) -> str:
    """Where the audit went and its head hash (kept elsewhere, it anchors the chain: audit verify --head)."""
    if not env_obj.audit_path:
        return "audit off"
    head = env_obj.audit_head
    return f"audit {env_obj.audit_path}" + (f" head {head}" if head else "")


def _summary(result, audit_where: str) -> str:
    u = result.usage
    parts = [f"exit {result.exit_code}", f"{result.duration_seconds:.2f} s"]
    if u.peak_memory_bytes is not None:
        mem = f"peak mem {_fmt_bytes(u.peak_memory_bytes)}"
        if u.memory_limit_bytes:
            mem += f" / {_fmt_bytes(u.memory_limit_bytes)}"
        parts.append(mem)
    if u.cpu_seconds is not None:
        cpu = f"cpu {u.cpu_seconds:.2f} s"
        if u.cpu_limit_percent:
            cpu += f" (limit {u.cpu_limit_percent:g}%)"
        parts.append(cpu)
    if u.peak_pids is not None:
        pids = f"pids {u.peak_pids}"
        if u.pids_limit:
            pids += f" / {u.pids_limit}"
        parts.append(pids)
    for b in result.breaches:
        value = _fmt_bytes(b.limit_value) if b.limit == "memory" else b.limit_value
        parts.append(f"LIMIT {b.limit} {value} hit: {b.detail}" if b.detail else f"LIMIT {b.limit} {value} hit")
    if result.redactions:
        parts.append("redacted " + ", ".join(f"{k}×{v}" for k, v in sorted(result.redactions.items())))
    if result.unconfined:
        parts.append(f"UNCONFINED ({result.unconfined})")
    parts.append(audit_where)
    return "cleanroom: " + " · ".join(parts)


class RunOptions(msgspec.Struct, kw_only=True):
    """What the command sees of the host: mounts, working directory, user, stdin."""

    volumes: list[str] = msgspec.field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    interactive: bool = False
    # The Python API's enable_monitoring / start_alerting / enable_tracing, from the command line.
    monitor: bool = False
    alert_webhooks: list[str] = msgspec.field(default_factory=list)
    trace: bool = False


def run_main(policy, env, env_vars, secrets, timeout, as_json, image, command,
             options: RunOptions | None = None) -> int:
    options = options or RunOptions()
    config = load_config(policy, env)
    if options.monitor or options.trace:
        config = config.with_changes(enable_monitoring=config.enable_monitoring or options.monitor,
                                     enable_tracing=config.enable_tracing or options.trace)
    try:
        mounts = [parse_volume(v) for v in options.volumes]
    except PolicyError as exc:
        die(str(exc), EXIT_POLICY)
    sandbox_env = _parse_env_vars(env_vars)
    secret_values = {}
    for name in secrets:
        if name not in os.environ:
            die(f"--secret {name}: no such variable in this process's environment", EXIT_POLICY)
        secret_values[name] = os.environ[name]
        sandbox_env[name] = os.environ[name]

    show_pull, end_pull = progress_bar()

    def out(text: str) -> None:
        end_pull()
        sys.stdout.write(text)
        sys.stdout.flush()

    def err(text: str) -> None:
        end_pull()
        sys.stderr.write(text)
        sys.stderr.flush()

    env_obj = CleanroomEnvironment(config)
    env_obj.pull_progress = show_pull  # a missing image is pulled (allowed_registries) with a bar
    try:
        with env_obj:
            for name, value in secret_values.items():
                env_obj.add_secret(value, name)
            if options.alert_webhooks:
                env_obj.start_alerting(options.alert_webhooks)
            result = env_obj.run(
                image, command, env=sandbox_env, timeout=timeout,
                on_stdout=None if as_json else out, on_stderr=None if as_json else err,
                mounts=mounts, workdir=options.workdir, user=options.user,
                stdin=sys.stdin.buffer if options.interactive else None,
            )
    except TimeoutExceeded as exc:
        click.echo(f"cleanroom: timeout: {exc.what} exceeded {exc.timeout:g} s; sandbox killed and removed"
                   + (f" · {_audit_where(env_obj)}" if env_obj.audit_path else ""), err=True)
        return EXIT_TIMEOUT
    except EngineUnavailable as exc:
        die(str(exc), EXIT_ENGINE)
    except (PolicyError, NetworkPolicyViolation) as exc:
        die(str(exc), EXIT_POLICY)
    except CleanroomError as exc:
        die(str(exc), EXIT_ENGINE)
    if as_json:
        data = msgspec.to_builtins(result)
        data["verdict"] = result.verdict
        data["audit_path"] = str(env_obj.audit_path) if env_obj.audit_path else None
        data["audit_head"] = env_obj.audit_head
        click.echo(msgspec.json.encode(data).decode())
    else:
        click.echo(_summary(result, _audit_where(env_obj)), err=True)
    return result.exit_code if result.exit_code >= 0 else EXIT_ENGINE
