"""Where alerts go beyond the environment itself: a webhook (a JSON POST to a URL the
user gives) or any callable. Delivery runs on one background thread with a bounded
queue and bounded retries, so a slow or dead receiver never blocks a test."""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.errors import CleanroomError


class WebhookSink:
    """POST each alert as JSON; retried ``retries`` times with a doubling pause, then dropped (logged)."""

    def __init__(self, url: str, *, timeout: float = 2.0, retries: int = 3, backoff: float = 0.25,
                 headers: dict[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CleanroomError(f"alert webhook {parts.scheme}://{parts.hostname or ''}… is not an http(s) URL; "
                                 "give one like http://127.0.0.1:8080/alerts")
        self.url = url
        self.where = f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"  # for logs: no path, no query
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def __call__(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    if resp.status < 300:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code != 429:
                    logger.warning("alert webhook refused the alert", webhook=self.where, status=exc.code)
                    return  # the receiver said no: asking again will not change its mind
            except (OSError, ValueError) as exc:
                if attempt == self.retries:
                    logger.warning("alert webhook unreachable, alert dropped", webhook=self.where,
                                   error=type(exc).__name__)
                    return
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        logger.warning("alert webhook kept failing, alert dropped", webhook=self.where)


Sink = Callable[[dict[str, Any]], None]


def as_sink(sink: str | Sink) -> Sink:
    return WebhookSink(sink) if isinstance(sink, str) else sink


class Dispatcher:
    """Hands payloads to sinks on one daemon thread; ``put`` never waits."""

    def __init__(self, sinks: list[Sink], maxsize: int = 1000) -> None:
        self.sinks = list(sinks)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._loop, name="cleanroom-alerts", daemon=True)
        self._thread.start()

    def put(self, payload: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            logger.warning("alert queue full, alert dropped", threshold=payload.get("threshold"))

    def _loop(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            for sink in self.sinks:
                try:
                    sink(payload)
                except Exception as exc:  # one sink failing must not starve the others
                    logger.warning("alert sink failed", error=type(exc).__name__)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout``), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
