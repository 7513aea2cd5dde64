"""Redis as a confined service."""

from __future__ import annotations

import urllib.parse

import redis as redis_py

from sandbox.services.generic import SERVICES_IMAGE, GenericContainer
from sandbox.services.settings import Value, redis_conf_quote, redis_directives
from sandbox.services.wait import AllOf, LogMatches, PortOpen

# The password goes in through stdin config, never argv (argv shows in ps and the audit),
# double-quoted with backslashes and quotes escaped, as redis.conf reads values.
# Directives from ``config`` follow as argument pairs, already quoted for redis.conf.
_ENTRYPOINT = r"""set -e
{ printf 'bind 0.0.0.0\nport 6379\nprotected-mode no\nsave ""\nappendonly no\n'
  [ -n "$REDIS_PASSWORD" ] && printf 'requirepass "%s"\n' "$(printf '%s' "$REDIS_PASSWORD" | sed 's/[\\"]/\\&/g')"
  while [ $# -gt 1 ]; do printf '%s %s\n' "$1" "$2"; shift 2; done; true; } \
  | exec setpriv --reuid=redis --regid=redis --init-groups redis-server -
"""


class RedisContainer(GenericContainer):
    """Redis. ``config`` holds redis.conf directives (``{"enable-debug-command": "yes"}``),
    part of a singleton's identity; the port, bind address and password are cleanroom's."""

    def __init__(self, password: str | None = None, image: str = SERVICES_IMAGE, *, port: int = 6379,
                 config: dict[str, Value] | None = None) -> None:
        self.password = password
        self.config = dict(config or {})
        directives = redis_directives(self.config)
        ours = image.startswith("localhost/cleanroom/")
        env = {"REDIS_PASSWORD": password} if password else {}
        if ours:
            pairs = [x for name, value in directives for x in (name, redis_conf_quote(value))]
            command = ["/bin/sh", "-c", _ENTRYPOINT, "cleanroom-redis", *pairs]
        else:
            flags = [x for name, value in directives for x in (f"--{name}", value)]
            command = ["redis-server", "--save", "", "--appendonly", "no", *flags]
            if password:
                command = ["/bin/sh", "-c",
                           'exec redis-server --save "" --appendonly no --requirepass "$REDIS_PASSWORD" "$@"',
                           "cleanroom-redis", *flags]
        super().__init__(image, command, env=env, ports=[port],
                         wait=AllOf(LogMatches(r"Ready to accept connections"), PortOpen(port)),
                         secrets={"redis_password": password} if password else None)
        self.port = port

    def connection_params(self, db: int = 0) -> dict[str, object]:
        return {"host": self.host, "port": self.host_port(self.port), "password": self.password, "db": db}

    def url(self, db: int = 0) -> str:
        """``redis://:password@host:port/db``, the password URL-quoted."""
        auth = f":{urllib.parse.quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.host_port(self.port)}/{db}"

    @property
    def connection_url(self) -> str:
        return self.url()

    def client(self, db: int = 0) -> redis_py.Redis:
        return redis_py.Redis(**self.connection_params(db), socket_timeout=5, decode_responses=True)

    def health_check(self) -> bool:
        return super().health_check() and self.is_connected()

    def adoption_probe(self) -> bool:
        return self.is_connected()

    def is_connected(self) -> bool:
        try:
            c = self.client()
            ok = c.ping()
            c.close()
            return bool(ok)
        except redis_py.RedisError:
            return False
