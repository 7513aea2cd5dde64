"""Services: PostgreSQL, Redis and any image, started once and reused.

Names resolve on first use, so an environment (and the ``cleanroom`` CLI) that never
starts PostgreSQL or Redis does not pay for importing their client libraries.
"""

import importlib

_LAZY_BY_MODULE = {
    "sandbox.services.generic": ("SERVICES_IMAGE", "GenericContainer"),
    "sandbox.services.postgres": ("PostgresContainer", "PostgresPool", "TestDatabase"),
    "sandbox.services.redis": ("RedisContainer",),
    "sandbox.services.wait": ("AllOf", "CommandSucceeds", "HttpOk", "LogMatches", "PortOpen"),
}
_LAZY = {name: module for module, names in _LAZY_BY_MODULE.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sandbox.services' has no attribute {name!r}")


__all__ = ["GenericContainer", "PostgresContainer", "PostgresPool", "TestDatabase", "RedisContainer",
           "SERVICES_IMAGE", "LogMatches", "PortOpen", "CommandSucceeds", "HttpOk", "AllOf"]
