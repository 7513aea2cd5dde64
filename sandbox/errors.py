"""One error hierarchy for everything cleanroom raises.

Every message is built from already-redacted text: callers pass redacted output
in, and nothing here ever formats raw container output.
"""

from __future__ import annotations


class CleanroomError(Exception):
    """Root of every error cleanroom raises on purpose."""


class PolicyError(CleanroomError):
    """A policy file is malformed or asks for something impossible.

    Carries the file, the dotted key path (``cleanroom.resource_limits.x``), the
    line where it could be found, and a sentence on what is allowed.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        allowed: str | None = None,
    ) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.allowed = allowed
        self.reason = message
        # Every problem found in the same file (this one first); the loader fills it
        # in, so `policy check` and editors can show them all at once.
        self.errors: list[PolicyError] = [self]
        where = file or "<policy>"
        if line is not None:
            where += f":{line}"
        parts = [where]
        if key:
            parts.append(key)
        text = ": ".join(parts) + f": {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class ContainerError(CleanroomError):
    """A sandbox failed to be created, started, or exited unexpectedly."""

    def __init__(self, message: str, *, sandbox: str | None = None, exit_code: int | None = None,
                 last_output: str = "") -> None:
        self.reason = message
        self.sandbox = sandbox
        self.exit_code = exit_code
        self.last_output = last_output
        text = message
        if sandbox:
            text = f"{sandbox}: {text}"
        if exit_code is not None:
            text += f" (exit {exit_code})"
        if last_output:
            text += "\n--- last output (redacted) ---\n" + last_output
        super().__init__(text)


class ContainerNotFound(ContainerError):
    """The container (or network) a call named does not exist (any more)."""


class ResourceLimitExceeded(CleanroomError):
    """A sandbox (or the environment) went over a limit its policy sets."""

    def __init__(self, limit: str, limit_value: float | int | None, observed: float | int | None,
                 sandbox: str | None = None, detail: str = "") -> None:
        self.limit = limit
        self.limit_value = limit_value
        self.observed = observed
        self.sandbox = sandbox
        who = f"sandbox {sandbox}" if sandbox else "environment"
        text = f"{who} exceeded the {limit} limit: observed {observed}, limit {limit_value}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class NetworkPolicyViolation(CleanroomError):
    """A request the network policy forbids (a port, an address, a route)."""


class TimeoutExceeded(CleanroomError):
    """A sandbox or test ran longer than the policy allows."""

    def __init__(self, what: str, timeout: float, sandbox: str | None = None, last_output: str = "") -> None:
        self.what = what
        self.timeout = timeout
        self.sandbox = sandbox
        self.last_output = last_output
        text = f"{what} exceeded its timeout of {timeout:g} s"
        if sandbox:
            text = f"{sandbox}: {text}"
        if last_output:
            text += "\n--- last output (redacted) ---\n" + last_output
        super().__init__(text)


class EngineUnavailable(CleanroomError):
    """No Podman API service answered. Lists what was tried and how to fix it."""

    def __init__(self, tried: list[tuple[str, str]], fix: str) -> None:
        self.tried = tried
        self.fix = fix
        lines = ["no Podman API service answered; tried:"]
        lines += [f"  - {url}: {why}" for url, why in tried]
        lines.append(f"fix: {fix}")
        super().__init__("\n".join(lines))


class AuditError(CleanroomError):
    """The audit trail cannot be written or continued: no work may run unaudited."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"audit log {path}: {problem}; nothing runs unaudited. fix: {fix}")


class SecretRefused(PolicyError):
    """A secret value given to mask (``--secret``, ``add_secret``, a service password)
    cannot be masked safely. The message names the secret, never its value. A
    PolicyError: what may be masked is the session's policy, not an engine failure."""

    def __init__(self, message: str, *, name: str) -> None:
        self.name = name
        self.file = self.line = self.allowed = None
        self.key = f"secret {name}"
        self.reason = message
        CleanroomError.__init__(self, message)


__all__ = [
    "CleanroomError",
    "PolicyError",
    "SecretRefused",
    "ContainerError",
    "ContainerNotFound",
    "ResourceLimitExceeded",
    "NetworkPolicyViolation",
    "TimeoutExceeded",
    "EngineUnavailable",
    "AuditError",
]
