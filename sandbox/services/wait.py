"""Wait strategies: how a service says it is ready. Each ``check`` is one cheap probe."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from typing import Any, Protocol


class WaitStrategy(Protocol):
    def check(self, container: Any) -> bool: ...
    def describe(self) -> str: ...


class LogMatches:
    """Ready once the (redacted) output matches a regex, ``times`` times."""

    def __init__(self, pattern: str, times: int = 1) -> None:
        self.regex = re.compile(pattern)
        self.times = times

    def check(self, container: Any) -> bool:
        return len(self.regex.findall(container.logs())) >= self.times

    def describe(self) -> str:
        return f"log line matching {self.regex.pattern!r}"


class PortOpen:
    """Ready once the published port accepts a TCP connection on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port

    def check(self, container: Any) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", container.host_port(self.port)), timeout=0.5):
                return True
        except OSError:
            return False

    def describe(self) -> str:
        return f"port {self.port} accepting connections"


class CommandSucceeds:
    """Ready once a command inside the container exits 0."""

    def __init__(self, command: list[str]) -> None:
        self.command = command

    def check(self, container: Any) -> bool:
        code, _ = container.exec(self.command)
        return code == 0

    def describe(self) -> str:
        return f"command {self.command!r} succeeding"


class HttpOk:
    """Ready once an HTTP endpoint on the published port answers with ``status``."""

    def __init__(self, port: int, path: str = "/", status: int = 200) -> None:
        self.port, self.path, self.status = port, path, status

    def check(self, container: Any) -> bool:
        url = f"http://127.0.0.1:{container.host_port(self.port)}{self.path}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback only
                return resp.status == self.status
        except urllib.error.HTTPError as exc:
            return exc.code == self.status
        except OSError:
            return False

    def describe(self) -> str:
        return f"HTTP {self.status} from :{self.port}{self.path}"


class AllOf:
    def __init__(self, *strategies: WaitStrategy) -> None:
        self.strategies = strategies

    def check(self, container: Any) -> bool:
        return all(s.check(container) for s in self.strategies)

    def describe(self) -> str:
        return " and ".join(s.describe() for s in self.strategies)
