"""Streams: a secret split anywhere, paused, unterminated or coloured is still masked,
and completed lines come out at once."""

import pytest
from secret_samples import ONE_PER_RULE, PEM, SAMPLES

from sandbox.redact import Redactor
from sandbox.redact.engine import MAX_HOLD
from sandbox.redact.samples import expand

AWS = expand("AKIA⟨Z16⟩", "tests:stream").text


def stream_all(r: Redactor, chunks) -> str:
    s = r.stream()
    return "".join(s.feed(c) for c in chunks) + s.close()


@pytest.mark.parametrize("rule,line,secret", ONE_PER_RULE, ids=[s[0] for s in ONE_PER_RULE])
def test_split_at_every_boundary_equals_one_shot(rule, line, secret):
    text = "before\n" + line + "\nafter\n"
    r = Redactor()
    expected = r.redact(text)
    for cut in range(1, len(text)):
        out = stream_all(r, [text[:cut], text[cut:]])
        assert out == expected, cut
        assert secret not in out


def test_one_char_at_a_time():
    text = "\n".join(line for _, line, _ in SAMPLES) + "\n"
    r = Redactor()
    assert stream_all(r, list(text)) == r.redact(text)


def test_end_of_stream_without_newline():
    r = Redactor()
    s = r.stream()
    assert s.feed("x " + AWS[:14]) == ""
    assert s.feed(AWS[14:]) == ""
    assert s.close() == "x [REDACTED:aws_access_key_id]"


def test_ansi_colour_inside_a_secret():
    r = Redactor()
    text = f"\x1b[31m{AWS[:8]}\x1b[0m{AWS[8:]}\x1b[0m done\n"
    out = stream_all(r, [text[:12], text[12:]])
    assert AWS[:8] not in out and AWS[8:] not in out
    assert "[REDACTED:aws_access_key_id]" in out


def test_ansi_escape_split_across_chunks():
    r = Redactor()
    out = stream_all(r, [f"{AWS[:8]}\x1b[3", f"1m{AWS[8:]}\n"])
    assert AWS[8:] not in out


def test_pem_block_across_many_chunks():
    r = Redactor()
    text = "log line\n" + PEM + "\nnext line\n"
    chunks = [text[i:i + 7] for i in range(0, len(text), 7)]
    out = stream_all(r, chunks)
    assert out == "log line\n[REDACTED:private_key_pem]\nnext line\n"


def test_completed_lines_are_released_immediately():
    s = Redactor().stream()
    assert s.feed("first line\nsecond") == "first line\n"
    assert s.feed(" part\n") == "second part\n"


def test_registered_secret_split_across_writes():
    r = Redactor(builtin=False)
    r.add_secret("correct-horse-battery", "PW")
    out = stream_all(r, ["pw is correct-hor", "se-batt", "ery!\n"])
    assert out == "pw is [REDACTED:secret:PW]!\n"


def test_hold_back_is_bounded():
    s = Redactor().stream()
    released = 0
    chunk = "x" * 65536
    for _ in range(80):  # 5 MiB without a newline
        released += len(s.feed(chunk))
        assert len(s._pending) <= MAX_HOLD + len(chunk)
    assert released >= 80 * 65536 - MAX_HOLD


def test_stream_counts_are_per_stream():
    r = Redactor()
    a, b = r.stream(), r.stream()
    a.feed(AWS + "\n")
    b.feed("nothing\n")
    assert dict(a.counts) == {"aws_access_key_id": 1} and dict(b.counts) == {}
    assert r.counts()["aws_access_key_id"] == 1
