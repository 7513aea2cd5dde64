"""Snapshot testing (policy key ``enable_snapshot_testing``): a sandbox's redacted output
kept under ``__snapshots__/<test module>/`` beside the test, compared on every run.

What legitimately varies between runs is normalised first (timestamps, durations,
container ids and names, ports on loopback, temporary paths; a suite adds its own
normalisers by overriding the ``cleanroom_snapshot_normalisers`` fixture or calling
``snapshot.add_normaliser``). A snapshot is written only from output that is already
redacted, and the whole text passes the environment's redactor once more before it is
written, so a file under ``__snapshots__`` never holds a secret.
``--cleanroom-snapshot-update`` writes missing snapshots and rewrites differing ones;
without it a missing or differing snapshot fails the test with a unified diff.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sandbox.engine.results import SNAPSHOT_MATCHER, RunResult
from sandbox.errors import CleanroomError

Normaliser = tuple[str, str] | Callable[[str], str]

# Order matters: whole timestamps before their parts, long ids before short ones.
DEFAULT_NORMALISERS: list[tuple[str, str]] = [
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<TIMESTAMP>"),
    (r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds)\b", "<DURATION>"),
    (r"\bcleanroom-([a-z]+)-[0-9a-f]{12}\b", r"cleanroom-\1-<ID>"),
    (r"\b[0-9a-f]{64}\b", "<ID>"),
    (r"\b[0-9a-f]{12}\b", "<ID>"),
    (r"\b(127\.0\.0\.1|0\.0\.0\.0|localhost|\[::1\]):\d{1,5}\b", r"\1:<PORT>"),
    (r"(?:/var)?/tmp/(?:pytest-of-[^/\s]+/pytest-\d+/[^/\s]+|[^/\s]+)", "<TMP>"),
]


class SnapshotsDisabled(CleanroomError):
    """Snapshots were used while the policy's enable_snapshot_testing is off."""

    def __init__(self) -> None:
        super().__init__("snapshot testing is off in this policy: set `enable_snapshot_testing = true` under "
                         "[cleanroom] (the session's policy: --cleanroom-policy or ./cleanroom.toml)")


class SnapshotMismatch(AssertionError):
    """The run's output differs from the stored snapshot (or there is none yet)."""


def _section(title: str, text: str) -> str:
    if not text:
        return f"--- {title} (empty) ---\n"
    tail = "" if text.endswith("\n") else "\n\\ no newline at end\n"
    return f"--- {title} ---\n{text}{tail}"


def _safe(part: str) -> str:
    return re.sub(r"[^\w.\-\[\]=,+]", "_", part)


class Snapshot:
    """One test's snapshots. Call it (``snapshot(result)``), or ``result.assert_matches_snapshot()``."""

    def __init__(self, directory: Path, test: str, *, enabled: bool, update: bool, redact: Callable[[str], str],
                 normalisers: list[Normaliser]) -> None:
        self.directory = directory
        self.test = test
        self.enabled = enabled
        self.update = update
        self.redact = redact
        self.normalisers: list[Normaliser] = [*DEFAULT_NORMALISERS, *normalisers]
        self.written: list[Path] = []
        self._count = 0

    def add_normaliser(self, pattern: str | Callable[[str], str], replacement: str = "") -> None:
        """A regular expression and its replacement, or a function of the whole text."""
        self.normalisers.append(pattern if callable(pattern) else (pattern, replacement))

    def normalise(self, text: str) -> str:
        for n in self.normalisers:
            text = n(text) if callable(n) else re.sub(n[0], n[1], text)
        return text

    def render(self, value: RunResult | str, files: Mapping[str, str | bytes] | None = None) -> str:
        """The snapshot text of a result (exit code, verdict, streams, files) or of plain text."""
        if isinstance(value, RunResult):
            parts = [f"exit_code: {value.exit_code}\nverdict: {value.verdict}\n",
                     _section("stdout", value.stdout), _section("stderr", value.stderr)]
        else:
            parts = [_section("text", value)]
        for name in sorted(files or {}):
            data = files[name]
            parts.append(_section(f"file {name}", data.decode("utf-8", "replace") if isinstance(data, bytes) else data))
        return self.redact(self.normalise("".join(parts)))

    def path(self, name: str | None = None) -> Path:
        if name is None:
            self._count += 1
            name = "" if self._count == 1 else str(self._count)
        return self.directory / (_safe(self.test) + (f".{_safe(name)}" if name else "") + ".txt")

    def __call__(self, value: RunResult | str, name: str | None = None, *,
                 files: Mapping[str, str | bytes] | None = None) -> None:
        if not self.enabled:
            raise SnapshotsDisabled()
        path = self.path(name)
        text = self.render(value, files)
        stored = path.read_text(encoding="utf-8") if path.is_file() else None
        if stored == text:
            return
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            self.written.append(path)
            return
        if stored is None:
            raise SnapshotMismatch(f"no snapshot {path} yet; run with --cleanroom-snapshot-update to write it, "
                                   f"then review and commit it. This run gave:\n{text}")
        diff = "".join(difflib.unified_diff(stored.splitlines(keepends=True), text.splitlines(keepends=True),
                                            fromfile=f"{path} (stored)", tofile="this run"))
        raise SnapshotMismatch(f"snapshot {path} differs from this run; if the change is intended, run with "
                               f"--cleanroom-snapshot-update and commit it\n{diff}")


def for_test(request: pytest.FixtureRequest, env: Any) -> Snapshot:
    """The test's Snapshot (one per test, shared by both fixtures), bound to RunResult for its duration."""
    snap = getattr(request.node, "_cleanroom_snapshot", None)
    if snap is None:
        module = Path(request.node.path)
        test = request.node.nodeid.split("::", 1)[1] if "::" in request.node.nodeid else request.node.name
        snap = Snapshot(module.parent / "__snapshots__" / module.stem, test.replace("::", "."),
                        enabled=env.config.enable_snapshot_testing,
                        update=bool(request.config.getoption("cleanroom_snapshot_update")),
                        redact=env.redact, normalisers=list(request.getfixturevalue("cleanroom_snapshot_normalisers")))
        request.node._cleanroom_snapshot = snap
        SNAPSHOT_MATCHER.set(lambda result, name, files: snap(result, name, files=files))
        request.addfinalizer(lambda: SNAPSHOT_MATCHER.set(None))
    return snap


@pytest.fixture
def cleanroom_snapshot_normalisers() -> list[Normaliser]:
    """Override to add normalisers: ``(regex, replacement)`` pairs or functions of the text."""
    return []


@pytest.fixture
def snapshot(request: pytest.FixtureRequest, cleanroom: Any) -> Iterator[Snapshot]:
    """This test's snapshots: ``snapshot(result_or_text, name=None, files=None)``."""
    snap = for_test(request, cleanroom)
    if not snap.enabled:
        raise SnapshotsDisabled()
    yield snap
