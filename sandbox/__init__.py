"""cleanroom: hermetic, policy-governed test sandboxes on rootless Podman."""

import importlib

from sandbox.errors import (
    AuditError,
    CleanroomError,
    ContainerError,
    ContainerNotFound,
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

# Lazy so that `import sandbox` (e.g. by the pytest plugin) stays cheap.
_LAZY_BY_MODULE = {
    "sandbox.policy": ("CleanroomConfig",),
    "sandbox.environment": ("CleanroomEnvironment",),
    "sandbox.engine.results": ("RunResult", "Usage", "UsageSample"),
    "sandbox.observe": ("Alert", "WebhookSink"),
    "sandbox.engine.types": ("Mount",),
    "sandbox.services": ("GenericContainer", "PostgresContainer", "RedisContainer"),
    "sandbox.services.wait": ("LogMatches", "PortOpen", "CommandSucceeds", "HttpOk", "AllOf"),
    "sandbox.testing.execute": ("TestOutcome",),
}
_LAZY = {name: module for module, names in _LAZY_BY_MODULE.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")


__all__ = [
    "CleanroomConfig",
    "CleanroomEnvironment",
    "Mount",
    "RunResult",
    "Usage",
    "UsageSample",
    "Alert",
    "WebhookSink",
    "GenericContainer",
    "PostgresContainer",
    "RedisContainer",
    "TestOutcome",
    "LogMatches",
    "PortOpen",
    "CommandSucceeds",
    "HttpOk",
    "AllOf",
    "AuditError",
    "CleanroomError",
    "ContainerError",
    "ContainerNotFound",
    "EngineUnavailable",
    "NetworkPolicyViolation",
    "PolicyError",
    "ResourceLimitExceeded",
    "TimeoutExceeded",
]
