"""Services: PostgreSQL, Redis and any image, started once and reused."""

from sandbox.services.generic import SERVICES_IMAGE, GenericContainer
from sandbox.services.postgres import PostgresContainer, PostgresPool, TestDatabase
from sandbox.services.redis import RedisContainer
from sandbox.services.wait import AllOf, CommandSucceeds, HttpOk, LogMatches, PortOpen

__all__ = ["GenericContainer", "PostgresContainer", "PostgresPool", "TestDatabase", "RedisContainer",
           "SERVICES_IMAGE", "LogMatches", "PortOpen", "CommandSucceeds", "HttpOk", "AllOf"]
