"""The one place engine failures are translated: each kind of failure from podman-py
and requests becomes the right CleanroomError, redacted, never chained to the raw one."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from podman.errors import APIError, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from sandbox.engine.output import Output, pump
from sandbox.engine.podman import libpod
from sandbox.engine.podman.frames import STDERR, STDOUT, MalformedStream, encode_frame, parse_frames, read_frames
from sandbox.engine.podman.upgrade import attach_path
from sandbox.errors import ContainerError, ContainerNotFound, EngineUnavailable, TimeoutExceeded

SECRET = "s3cret-in-a-podman-message"


class _Resp:
    def __init__(self, status: int = 200, payload=None, error: Exception | None = None) -> None:
        self.status_code = status
        self.reason = "Internal Server Error" if status >= 500 else "OK"
        self.url = "http://d/v5/libpod/x"
        self._payload = payload
        self._error = error

    def raise_for_status(self) -> None:
        if self._error is not None:
            raise self._error

    def json(self):
        return self._payload


def api_raising(monkeypatch, outcome) -> libpod.LibpodAPI:
    """A LibpodAPI whose every HTTP call returns or raises ``outcome``."""
    monkeypatch.setattr(libpod, "resolve_url", lambda url: "unix:///run/fake/podman.sock")

    def call(*args, **kw):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    api = libpod.LibpodAPI(redact=lambda s: s.replace(SECRET, "[REDACTED:test]"))
    client = SimpleNamespace(api=SimpleNamespace(get=call, post=call, delete=call), close=lambda: None)
    monkeypatch.setattr(api, "_client", lambda: client)
    return api


@pytest.mark.parametrize(("outcome", "expected", "words"), [
    (_Resp(404, error=NotFound(f"no such container {SECRET}")), ContainerNotFound, "inspect"),
    (_Resp(500, error=APIError("500", response=_Resp(500), explanation=f"runtime said {SECRET}")), ContainerError, "inspect failed"),
    (ReadTimeout("read timed out"), TimeoutExceeded, "inspect exceeded its timeout"),
    (RequestsConnectionError(f"connection refused {SECRET}"), EngineUnavailable, "unix:///run/fake/podman.sock"),
])
def test_each_failure_becomes_its_cleanroom_error(monkeypatch, outcome, expected, words):
    api = api_raising(monkeypatch, outcome)
    with pytest.raises(expected) as info:
        api.inspect_container("abc")
    assert type(info.value) is expected
    assert words in str(info.value)
    assert SECRET not in str(info.value)
    # Never chained to the dependency's exception, whose text is not redacted.
    assert info.value.__cause__ is None and info.value.__context__ is None


def _wrapped(cause: Exception) -> APIError:
    """What podman-py raises when the transport fails: an APIError without a response,
    raised from the requests exception."""
    try:
        raise cause
    except Exception as exc:
        try:
            raise APIError("http://%2Frun%2Ffake/v5/libpod/x", explanation="GET operation failed") from exc
        except APIError as wrapped:
            return wrapped


@pytest.mark.parametrize(("cause", "expected"), [
    (RequestsConnectionError("Unable to make connection to UDS"), EngineUnavailable),
    (ReadTimeout("read timed out"), TimeoutExceeded),
])
def test_podman_py_s_wrapped_transport_failures_are_recognised(monkeypatch, cause, expected):
    api = api_raising(monkeypatch, _wrapped(cause))
    with pytest.raises(expected) as info:
        api.create_container({"image": "i", "name": "n"}, timeout=5)
    assert "operation failed" not in str(info.value)  # the cause is named, not podman-py's wrapper text


def test_an_engine_that_went_away_names_the_socket_and_the_fix(monkeypatch):
    api = api_raising(monkeypatch, RequestsConnectionError("refused"))
    with pytest.raises(EngineUnavailable) as info:
        api.start_container("abc", timeout=5)
    assert "unix:///run/fake/podman.sock" in str(info.value) and "fix:" in str(info.value)
    assert "podman system service" in info.value.fix


def test_a_runtime_failure_at_start_carries_the_shell_exit_code(monkeypatch):
    api = api_raising(monkeypatch, _Resp(500, error=APIError("500", response=_Resp(500),
                                                                 explanation="stat /no/such: no such file")))
    with pytest.raises(ContainerError) as info:
        api.init_container("abc", timeout=5)
    assert info.value.exit_code == 127 and "start failed" in str(info.value)


def test_a_missing_image_says_how_to_build_it(monkeypatch):
    api = api_raising(monkeypatch, _Resp(404, error=NotFound("image not known")))
    with pytest.raises(ContainerError) as info:
        api.create_container({"image": "localhost/x:1", "name": "n"}, timeout=5)
    assert "localhost/x:1 not found" in str(info.value) and "images build" in str(info.value)


def test_removing_what_is_already_gone_is_fine(monkeypatch):
    api = api_raising(monkeypatch, _Resp(404, error=NotFound("no such container")))
    api.remove_container("abc")  # no error: removal is idempotent


def test_inspect_is_typed(monkeypatch):
    data = {"Id": "abc", "Name": "/sb", "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0},
            "Config": {"Labels": {"k": "v"}},
            "NetworkSettings": {"Ports": {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40001"}],
                                          "6379/tcp": None}}}
    info = api_raising(monkeypatch, _Resp(200, data)).inspect_container("abc")
    assert (info.name, info.state.pid, info.state.running, info.labels, info.ports) == \
        ("sb", 42, True, {"k": "v"}, {5432: 40001})


def test_frames_round_trip_and_a_torn_stream_ends_cleanly():
    data = encode_frame(STDOUT, b"out") + encode_frame(STDERR, b"err") + encode_frame(STDOUT, b"")
    assert parse_frames(data) == [(STDOUT, b"out"), (STDERR, b"err")]
    torn = encode_frame(STDOUT, b"out") + encode_frame(STDOUT, b"abcdef")[:10]  # cut inside the payload
    assert parse_frames(torn) == [(STDOUT, b"out"), (STDOUT, b"ab")]
    assert parse_frames(encode_frame(STDOUT, b"out")[:5]) == []  # cut inside a header


# What Podman 4.3 sent, recorded, when an attach also asked for the log replay and the
# container had already written its line: a frame one byte short ("hello" announced, "hello\n"
# sent), then the same line again. Parsed leniently it read "hello" (the newline lost).
_REPLAYED = (b"\x01\x00\x00\x00\x00\x00\x00\x05" + b"hello" + b"\n"
             + b"\x01\x00\x00\x00\x00\x00\x00\x06" + b"hello\n")


def test_a_malformed_frame_header_is_an_error_never_a_silent_cut():
    with pytest.raises(MalformedStream) as info:
        parse_frames(_REPLAYED)
    assert "hello" not in str(info.value) and "\\x" not in str(info.value)  # output is never quoted raw
    with pytest.raises(MalformedStream):  # no such stream
        parse_frames(b"\x07\x00\x00\x00\x00\x00\x00\x01x")


def test_a_run_whose_stream_is_malformed_fails_and_says_so():
    output = Output(None)
    pump(output, iter(parse_frames_lazily(_REPLAYED)), "t", "sb").join(5)
    assert output.malformed and "malformed" in output.broken() and "service stopped" not in output.broken()


def parse_frames_lazily(data: bytes):
    return read_frames(io.BytesIO(data).read)


def test_attach_never_asks_for_the_log_replay(monkeypatch):
    seen = {}
    api = api_raising(monkeypatch, _Resp(200, {}))
    monkeypatch.setattr(api, "_request", lambda *a, **kw: seen.update(kw.get("params") or {}) or _Resp())
    monkeypatch.setattr(libpod, "PodmanClient", lambda **kw: SimpleNamespace(close=lambda: None))
    api.attach("c1")
    assert seen["logs"] is False and seen["stream"] is True
    assert "logs=false" in attach_path("c1") and "logs=true" not in attach_path("c1")
