"""Snapshot rendering, normalising, comparing and updating, without Podman."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.engine.results import RunResult
from sandbox.errors import CleanroomError
from sandbox.testing.snapshots import Snapshot, SnapshotMismatch, SnapshotsDisabled


def _result(stdout: str, stderr: str = "", exit_code: int = 0) -> RunResult:
    return RunResult(sandbox="cleanroom-sandbox-0123456789ab", image="img", command=["x"], exit_code=exit_code,
                     stdout=stdout, stderr=stderr, duration_seconds=0.1)


def _snap(tmp_path, update=False, enabled=True, redact=lambda t: t, normalisers=()):
    return Snapshot(tmp_path / "__snapshots__" / "test_mod", "test_x[a/b]", enabled=enabled, update=update,
                    redact=redact, normalisers=list(normalisers))


VARYING = ("started 2026-03-04T05:06:07.123Z in 1.25s on 127.0.0.1:45123 as cleanroom-sandbox-a1b2c3d4e5f6 "
           "id " + "ab" * 32 + " host 0123456789ab wrote /tmp/tmpk2j3h4/out.txt and "
           "/tmp/pytest-of-cleanroom/pytest-12/test_x0/data\n")


def test_what_varies_is_normalised_and_the_rest_kept():
    out = _snap(Path(".")).normalise(VARYING)
    assert out == ("started <TIMESTAMP> in <DURATION> on 127.0.0.1:<PORT> as cleanroom-sandbox-<ID> id <ID> "
                   "host <ID> wrote <TMP>/out.txt and <TMP>/data\n")


def test_users_add_normalisers_as_pairs_or_functions():
    snap = _snap(Path("."), normalisers=[(r"user=\w+", "user=<USER>")])
    snap.add_normaliser(str.upper)
    assert snap.normalise("user=ada at 2026-01-01 00:00:00") == "USER=<USER> AT <TIMESTAMP>"


def test_render_shows_exit_code_verdict_streams_and_files_unambiguously():
    text = _snap(Path(".")).render(_result("out\n", "no newline", 3), files={"/b": b"bee\n", "/a": ""})
    assert text == ("exit_code: 3\nverdict: failed\n--- stdout ---\nout\n--- stderr ---\nno newline\n"
                    "\\ no newline at end\n--- file /a (empty) ---\n--- file /b ---\nbee\n")


def test_first_run_fails_until_updated_then_matches(tmp_path):
    with pytest.raises(SnapshotMismatch, match="no snapshot .* --cleanroom-snapshot-update"):
        _snap(tmp_path)(_result("hello\n"))
    writer = _snap(tmp_path, update=True)
    writer(_result("hello\n"))
    writer(_result("second\n"))
    assert [p.name for p in writer.written] == ["test_x[a_b].txt", "test_x[a_b].2.txt"]
    reader = _snap(tmp_path)
    reader(_result("hello\n"))
    reader(_result("second\n"))
    _snap(tmp_path, update=True)(_result("at 2026-05-05T01:02:03Z\n"), name="named one")
    _snap(tmp_path)(_result("at 2030-01-01T00:00:00Z\n"), name="named one")  # only a timestamp differs


def test_a_mismatch_fails_with_a_unified_diff(tmp_path):
    _snap(tmp_path, update=True)(_result("one\ntwo\nthree\n"))
    with pytest.raises(SnapshotMismatch) as info:
        _snap(tmp_path)(_result("one\nTWO\nthree\n", exit_code=1))
    msg = str(info.value)
    assert "test_x[a_b].txt (stored)" in msg and "+++ this run" in msg
    assert "\n-two\n+TWO\n" in msg and "\n-exit_code: 0\n-verdict: passed\n+exit_code: 1\n" in msg
    assert "--cleanroom-snapshot-update" in msg


def test_snapshot_text_passes_the_redactor_so_files_read_back_are_masked(tmp_path):
    secret = "s3cr3t-value-42"
    snap = _snap(tmp_path, update=True, redact=lambda t: t.replace(secret, "[REDACTED:secret]"))
    snap(_result("ok\n"), files={"/etc/conf": f"token {secret}\n"})
    stored = snap.written[0].read_text()
    assert secret not in stored and "[REDACTED:secret]" in stored


def test_with_the_key_off_using_a_snapshot_names_the_key(tmp_path):
    with pytest.raises(SnapshotsDisabled, match="enable_snapshot_testing = true"):
        _snap(tmp_path, enabled=False)(_result("x"))
    assert issubclass(SnapshotsDisabled, CleanroomError)


def test_result_outside_a_test_says_what_it_needs():
    with pytest.raises(CleanroomError, match="`sandbox` or `snapshot` fixture"):
        _result("x").assert_matches_snapshot()
