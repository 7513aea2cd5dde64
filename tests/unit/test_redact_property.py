"""For random text with planted secrets and random chunkings: streamed == one-shot,
and no planted secret survives."""

from hypothesis import given, settings
from hypothesis import strategies as st
from secret_samples import SAMPLES

from sandbox.redact import Redactor

REDACTOR = Redactor(["internal-[0-9]{6}"])
REDACTOR.add_secret("registered-value-77", "REG")
PLANTS = [(line, secret) for _, line, secret in SAMPLES] + [
    ("id internal-123456 ok", "internal-123456"), ("x registered-value-77 y", "registered-value-77")]

filler = st.text(alphabet=st.sampled_from(list("abcdef 0123\n\t.,:=-\x1b[m")), max_size=40)


@st.composite
def documents(draw):
    parts, secrets = [], []
    for _ in range(draw(st.integers(1, 5))):
        parts.append(draw(filler))
        line, secret = draw(st.sampled_from(PLANTS))
        parts.append("\n" + line + "\n")
        secrets.append(secret)
    parts.append(draw(filler))
    text = "".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return text, chunks, secrets


@settings(max_examples=300, deadline=None)
@given(documents())
def test_streamed_equals_one_shot_and_hides_every_secret(doc):
    text, chunks, secrets = doc
    s = REDACTOR.stream()
    streamed = "".join(s.feed(c) for c in chunks) + s.close()
    one_shot = REDACTOR.redact(text)
    assert streamed == one_shot
    for secret in secrets:
        assert secret not in streamed
