"""The engine's stage marks, kept per container: when each stage began, so its phases
can be timed (profiling), drawn (the report's timeline) and traced (spans)."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

PHASES = ("create", "init", "confine", "start", "run", "wait", "remove")
_FINISHED_REMEMBERED = 4096


class StageRecord:
    """One container's marks: (stage, Unix time in ns), the last one "done" once it is gone."""

    def __init__(self, name: str, context: Any = None) -> None:
        self.name = name
        self.kind = "sandbox"
        self.image: str | None = None
        self.context = context  # the tracing parent, captured where the container was asked for
        self.marks: list[tuple[str, int]] = []

    def mark(self, stage: str) -> None:
        self.marks.append((stage, time.time_ns()))

    @property
    def started_ns(self) -> int:
        return self.marks[0][1]

    @property
    def ended_ns(self) -> int | None:
        return self.marks[-1][1] if self.marks and self.marks[-1][0] == "done" else None

    @property
    def done(self) -> bool:
        return self.ended_ns is not None

    def phases(self) -> list[tuple[str, int, int]]:
        """(phase, start ns, end ns) of every stage that ended."""
        return [(stage, t0, t1) for (stage, t0), (_, t1) in zip(self.marks, self.marks[1:], strict=False)]

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for stage, t0, t1 in self.phases():
            out[stage] = round(out.get(stage, 0.0) + (t1 - t0) / 1e9, 6)
        return out

    def startup_seconds(self) -> float | None:
        """From the create request until its command runs: the container's startup time."""
        run = next((t for stage, t in self.marks if stage == "run"), None)
        return None if run is None else (run - self.started_ns) / 1e9

    def as_dict(self) -> dict[str, Any]:
        ended = self.ended_ns
        return {"name": self.name, "kind": self.kind, "image": self.image, "started": self.started_ns / 1e9,
                "ended": ended / 1e9 if ended is not None else None, "phases": self.seconds()}


class StageBook:
    """Records of the containers in progress and of the recently finished ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, StageRecord] = {}
        self._finished: collections.OrderedDict[str, StageRecord] = collections.OrderedDict()
        self.all: collections.deque[StageRecord] = collections.deque(maxlen=_FINISHED_REMEMBERED)

    def mark(self, name: str, stage: str, context: Any = None) -> StageRecord | None:
        with self._lock:
            if stage == "create":
                record = self._open[name] = StageRecord(name, context)
                self.all.append(record)
            else:
                record = self._open.get(name)
                if record is None:
                    return None  # a container made before monitoring started
            record.mark(stage)
            if stage == "done":
                self._finished[name] = self._open.pop(name)
                while len(self._finished) > _FINISHED_REMEMBERED:
                    self._finished.popitem(last=False)
            return record

    def adopted(self, name: str) -> None:
        """A running service another process made, used from now on (a reused singleton)."""
        with self._lock:
            if name in self._open:
                return
            record = self._open[name] = StageRecord(name)
            record.kind = "service"
            record.mark("run")
            self.all.append(record)

    def describe(self, name: str, kind: str | None, image: str | None) -> None:
        with self._lock:
            record = self._open.get(name) or self._finished.get(name)
            if record is not None:
                record.kind = kind or record.kind
                record.image = image or record.image

    def take(self, name: str) -> StageRecord | None:
        """A finished record, handed over once (to its result)."""
        with self._lock:
            return self._finished.pop(name, None)

    def open_records(self) -> list[StageRecord]:
        with self._lock:
            return list(self._open.values())

    def records(self) -> list[StageRecord]:
        with self._lock:
            return list(self.all)
