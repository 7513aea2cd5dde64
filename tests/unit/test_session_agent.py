"""The engine's side of a session's agent: the framing (cleanroom-helper -A's C side
is exercised by tests/integration/test_sessions.py), reassembly from pieces, stale
replies, and stdin flow control against a channel that answers nothing by itself."""

from __future__ import annotations

import threading
import time

import pytest
from loguru import logger

from sandbox.engine.output import Output
from sandbox.engine.podman.frames import STDERR, STDOUT
from sandbox.engine.session import agent_frames as af
from sandbox.engine.session.agent import WINDOW, Agent
from sandbox.errors import ContainerError


def test_an_exec_request_carries_flags_user_workdir_argv_and_env():
    frame = af.exec_request(7, ["sh", "-c", "echo é"], env={"A": "1", "B": "x=y"}, workdir="/w", user="1000:2",
                            keep_caps=True, reads_stdin=True)
    (req,) = af.Decoder().feed(frame)
    assert (req.kind, req.exec_id) == (af.EXEC, 7)
    assert req.payload.split(b"\0") == [b"ki", b"1000:2", b"/w", b"3", b"sh", b"-c", "echo é".encode(),
                                        b"A=1", b"B=x=y", b""]
    plain = af.Decoder().feed(af.exec_request(1, ["true"]))[0]
    assert plain.payload == b"\0\0\0" + b"1\0true\0"


@pytest.mark.parametrize("bad", [{"argv": []}, {"argv": ["a\0b"]}, {"argv": ["x"], "env": {"K": "v\0"}},
                                 {"argv": ["x"], "workdir": "/\0"}, {"argv": ["x" * (1 << 20)]}])
def test_requests_that_cannot_be_framed_are_refused(bad):
    with pytest.raises(ContainerError):
        af.exec_request(1, **bad)


def test_frames_come_back_whole_from_pieces_of_any_size():
    stream = b"".join([af.reply(af.STDOUT, 3, b"hello"), af.reply(af.ACK, 3, number=65536),
                       af.reply(af.EXIT, 3, number=130), af.reply(af.FAILED, 4, b"fork: nope", number=125)])
    for piece in (1, 5, 12, 13, len(stream)):
        decoder, got = af.Decoder(), []
        for i in range(0, len(stream), piece):
            got += decoder.feed(stream[i:i + piece])
        assert [(r.kind, r.exec_id) for r in got] == [(af.STDOUT, 3), (af.ACK, 3), (af.EXIT, 3), (af.FAILED, 4)]
        assert got[0].payload == b"hello" and got[1].number() == 65536 and got[2].number() == 130
        assert got[3].number() == 125 and got[3].payload[4:] == b"fork: nope" and decoder.pending == 0


@pytest.mark.parametrize("head", [af.HEAD.pack(ord("O"), b"\0\0\0", 1, af.MAX_PAYLOAD + 1),  # too long
                                  b"x\n" + af.reply(af.EXIT, 1, number=0)[:10],  # foreign bytes in the stream
                                  af.HEAD.pack(ord("O"), b"\0\0\1", 1, 4)])  # padding not zero
def test_a_malformed_head_is_an_error_at_once_not_a_wait_or_a_huge_allocation(head):
    with pytest.raises(ContainerError, match="corrupt"):
        af.Decoder().feed(head)


class _Channel:
    """Records what is sent; the test plays the agent with ``answer``."""

    def __init__(self) -> None:
        self.sent = af.Decoder()
        self.requests: list[af.Reply] = []
        self._out: list[tuple[int, bytes]] = []
        self._cond = threading.Condition()
        self.closed = False

    def send(self, data: bytes) -> None:
        with self._cond:
            self.requests += self.sent.feed(data)
            self._cond.notify_all()

    def answer(self, data: bytes, stream: int = STDOUT) -> None:
        with self._cond:
            self._out.append((stream, data))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 5) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.requests), timeout)

    def __iter__(self):
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._out or self.closed)
                if not self._out:
                    return
                item = self._out.pop(0)
            yield item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def _stdin_bytes(requests: list[af.Reply]) -> int:
    return sum(len(r.payload) for r in requests if r.kind == af.STDIN)


def test_stdin_never_runs_more_than_a_window_ahead_of_the_agent_and_stops_when_the_command_ends():
    channel = _Channel()
    agent = Agent(channel, "sb", str)
    channel.answer(af.reply(af.READY, 0, b"agent"))
    assert agent.ready.wait(5)
    running = agent.start(["cat"], Output(None), env=None, workdir=None, user=None, keep_caps=False,
                          stdin=b"x" * (8 * WINDOW))
    channel.wait_for(lambda reqs: _stdin_bytes(reqs) == WINDOW)
    time.sleep(0.1)
    assert _stdin_bytes(channel.requests) == WINDOW  # nothing acknowledged: nothing more sent
    channel.answer(af.reply(af.ACK, running.id, number=WINDOW // 2))
    channel.wait_for(lambda reqs: _stdin_bytes(reqs) == WINDOW + WINDOW // 2)
    # An acknowledgement of an earlier command is not credit for this one.
    channel.answer(af.reply(af.ACK, running.id - 1, number=WINDOW))
    channel.answer(af.reply(af.STDOUT, running.id - 1, b"stale output"))
    time.sleep(0.1)
    assert _stdin_bytes(channel.requests) == WINDOW + WINDOW // 2
    channel.answer(af.reply(af.STDERR, running.id, b"partial"))
    channel.answer(af.reply(af.EXIT, running.id, number=141))
    assert running.done.wait(5) and running.status == 141
    running.output.close()
    assert running.output.stdout.text() == "" and running.output.stderr.text() == "partial"
    time.sleep(0.1)
    assert not any(r.kind == af.STDIN_END for r in channel.requests)  # over: the rest was not wanted
    channel.close()
    agent.close()


def test_the_agents_own_stderr_is_logged_redacted_and_a_closed_channel_ends_the_command():
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="WARNING")
    logger.enable("sandbox")  # a library logs only when asked
    try:
        _agent_complains_then_goes()
    finally:
        logger.disable("sandbox")
        logger.remove(sink)
    assert any("complained about [REDACTED]" in line for line in logged) and "s3cret" not in "".join(logged)


def _agent_complains_then_goes() -> None:
    channel = _Channel()
    agent = Agent(channel, "sb", lambda t: t.replace("s3cret", "[REDACTED]"))
    channel.answer(af.reply(af.READY, 0))
    channel.answer(b"cleanroom-helper: agent complained about s3cret\n", STDERR)
    running = agent.start(["x"], Output(None), env=None, workdir=None, user=None, keep_caps=False, stdin=None)
    channel.close()
    assert running.done.wait(5) and running.status is None and agent.gone
    running.output.close()
    assert running.output.stdout.text() == "" and running.output.stderr.text() == ""
    with pytest.raises(ContainerError, match="agent is gone"):
        agent.start(["y"], Output(None), env=None, workdir=None, user=None, keep_caps=False, stdin=None)
