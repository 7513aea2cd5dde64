"""Redis as a confined service."""

from __future__ import annotations

import urllib.parse

import redis as redis_py

from sandbox.services.generic import SERVICES_IMAGE, GenericContainer
from sandbox.services.wait import AllOf, LogMatches, PortOpen

# The password goes in through stdin config, never argv (argv shows in ps and the audit).
_ENTRYPOINT = r"""set -e
{ printf 'bind 0.0.0.0\nport 6379\nprotected-mode no\nsave ""\nappendonly no\n'
  [ -n "$REDIS_PASSWORD" ] && printf 'requirepass %s\n' "$REDIS_PASSWORD"; true; } \
  | exec setpriv --reuid=redis --regid=redis --init-groups redis-server -
"""


class RedisContainer(GenericContainer):
    def __init__(self, password: str | None = None, image: str = SERVICES_IMAGE, *, port: int = 6379) -> None:
        self.password = password
        ours = image.startswith("localhost/cleanroom/")
        env = {"REDIS_PASSWORD": password} if password else {}
        if ours:
            command = ["/bin/sh", "-c", _ENTRYPOINT]
        else:
            command = ["redis-server", "--save", "", "--appendonly", "no"]
            if password:
                command = ["/bin/sh", "-c",
                           'exec redis-server --save "" --appendonly no --requirepass "$REDIS_PASSWORD"']
        super().__init__(image, command, env=env, ports=[port],
                         wait=AllOf(LogMatches(r"Ready to accept connections"), PortOpen(port)),
                         secrets={"redis_password": password} if password else None)
        self.port = port

    def connection_params(self, db: int = 0) -> dict[str, object]:
        return {"host": self.host, "port": self.host_port(self.port), "password": self.password, "db": db}

    def url(self, db: int = 0) -> str:
        # Quoted: a password with @, / or : would otherwise break the URL.
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.host_port(self.port)}/{db}"

    def client(self, db: int = 0) -> redis_py.Redis:
        return redis_py.Redis(**self.connection_params(db), socket_timeout=5, decode_responses=True)

    def health_check(self) -> bool:
        return super().health_check() and self.is_connected()

    def is_connected(self) -> bool:
        try:
            c = self.client()
            ok = c.ping()
            c.close()
            return bool(ok)
        except redis_py.RedisError:
            return False
