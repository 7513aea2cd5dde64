"""The usage sampler: every metrics_interval, each live sandbox's and service's cgroup
counters (read through the cgroup confiner, never by walking processes) become one
UsageSample; peaks are kept per container and for the environment.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from sandbox.engine.results import UsageSample

Source = Callable[[], list[tuple[Any, dict[str, int]]]]  # (handle with .name, raw cgroup counters)
Listener = Callable[[str, UsageSample], None]
_MAX_SAMPLES = 100_000  # per container: a day at one sample a second
_DONE_REMEMBERED = 4096


class Series:
    """What was sampled of one container so far."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[UsageSample] = []
        self.count = 0
        self.peak_memory_bytes = 0
        self.peak_cpu_percent = 0.0
        self.peak_pids = 0
        self._last: tuple[float, int] | None = None  # (monotonic, cpu_ns) of the previous reading

    def add(self, raw: dict[str, int], keep: bool) -> UsageSample:
        now = time.monotonic()
        cpu_ns = raw.get("cpu_ns")
        cpu = None
        if cpu_ns is not None and self._last is not None and now > self._last[0]:
            cpu = round(max(0.0, (cpu_ns - self._last[1]) / 1e9 / (now - self._last[0]) * 100), 2)
        if cpu_ns is not None:
            self._last = (now, cpu_ns)
        sample = UsageSample(t=round(time.time(), 4), memory_bytes=int(raw.get("memory", 0)), cpu_percent=cpu,
                             pids=int(raw.get("pids", 0)))
        self.count += 1
        self.peak_memory_bytes = max(self.peak_memory_bytes, sample.memory_bytes, raw.get("peak_memory", 0))
        self.peak_cpu_percent = max(self.peak_cpu_percent, cpu or 0.0)
        self.peak_pids = max(self.peak_pids, sample.pids)
        if keep and len(self.samples) < _MAX_SAMPLES:
            self.samples.append(sample)
        return sample


class UsageSampler:
    """One thread for the environment; listeners hear each sample (alerts, metrics)."""

    def __init__(self, source: Source, interval: float, *, keep_series: bool = False) -> None:
        self._source = source
        self.interval = float(interval)
        self.keep_series = keep_series
        self._listeners: list[Listener] = []
        self._live: dict[str, Series] = {}
        self._done: collections.OrderedDict[str, Series] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_memory_bytes = 0
        self.peak_cpu_percent = 0.0

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="cleanroom-monitor", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(2.0, self.interval * 2))

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _loop(self) -> None:
        # Ticks on a fixed schedule, so a slow read does not stretch the interval.
        next_at = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            if next_at < time.monotonic():  # fell behind (a suspended host): skip, never burst
                next_at = time.monotonic() + self.interval
            try:
                self.tick()
            except Exception as exc:  # monitoring must never take the environment down
                logger.warning("usage sample failed", error=str(exc))

    def tick(self) -> None:
        readings = self._source()
        heard: list[tuple[str, UsageSample]] = []
        with self._lock:
            for handle, raw in readings:
                name = handle.name
                if name in self._done:
                    continue  # released between the listing and now
                series = self._live.get(name)
                if series is None:
                    series = self._live[name] = Series(name)
                sample = series.add(raw, self.keep_series)
                self.peak_memory_bytes = max(self.peak_memory_bytes, series.peak_memory_bytes)
                self.peak_cpu_percent = max(self.peak_cpu_percent, sample.cpu_percent or 0.0)
                heard.append((name, sample))
        for name, sample in heard:
            for listener in self._listeners:
                try:
                    listener(name, sample)
                except Exception as exc:
                    logger.warning("usage listener failed", error=str(exc))

    def begin(self, name: str) -> None:
        """A container of this name is being made (a replaced singleton reuses its name)."""
        with self._lock:
            self._done.pop(name, None)

    def finish(self, name: str) -> Series | None:
        """The container is gone: its series stops growing and waits for take()."""
        with self._lock:
            series = self._live.pop(name, None) or Series(name)
            self._done[name] = series
            while len(self._done) > _DONE_REMEMBERED:
                self._done.popitem(last=False)
        return series

    def take(self, name: str) -> Series | None:
        """The series of a finished container, handed over once."""
        with self._lock:
            return self._done.pop(name, None)

    def series(self, name: str) -> Series | None:
        with self._lock:
            return self._live.get(name) or self._done.get(name)

    def live(self) -> list[Series]:
        with self._lock:
            return list(self._live.values())
