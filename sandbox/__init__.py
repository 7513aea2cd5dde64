"""cleanroom: hermetic, policy-governed test sandboxes on rootless Podman."""

from sandbox.errors import (
    AuditError,
    CleanroomError,
    ContainerError,
    EngineUnavailable,
    NetworkPolicyViolation,
    PolicyError,
    ResourceLimitExceeded,
    TimeoutExceeded,
)

__version__ = "0.1.0"

# A library logs only when the application asks: `logger.enable("sandbox")`.
from loguru import logger as _logger

_logger.disable("sandbox")

_LAZY = {
    "CleanroomConfig": ("sandbox.policy", "CleanroomConfig"),
    "CleanroomEnvironment": ("sandbox.environment", "CleanroomEnvironment"),
    "RunResult": ("sandbox.engine.results", "RunResult"),
    "Usage": ("sandbox.engine.results", "Usage"),
    "GenericContainer": ("sandbox.services", "GenericContainer"),
    "PostgresContainer": ("sandbox.services", "PostgresContainer"),
    "RedisContainer": ("sandbox.services", "RedisContainer"),
    "TestOutcome": ("sandbox.services", "TestOutcome"),
}


def __getattr__(name: str):
    # Lazy so that `import sandbox` (e.g. by the pytest plugin) stays cheap.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")


__all__ = [
    "CleanroomConfig",
    "CleanroomEnvironment",
    "RunResult",
    "Usage",
    "GenericContainer",
    "PostgresContainer",
    "RedisContainer",
    "TestOutcome",
    "AuditError",
    "CleanroomError",
    "ContainerError",
    "EngineUnavailable",
    "NetworkPolicyViolation",
    "PolicyError",
    "ResourceLimitExceeded",
    "TimeoutExceeded",
]
