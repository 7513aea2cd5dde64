import base64
import json
import re
import urllib.parse

import pytest
from secret_samples import BENIGN, FAMILY, PRIORITY, SAMPLES

from sandbox.errors import PolicyError, SecretRefused
from sandbox.redact import BUILTIN_RULES, Redactor
from sandbox.redact.samples import expand

AWS_KEY = expand("AKIA⟨Z16⟩", "tests:aws").text
REDACTOR = Redactor()


def test_every_builtin_rule_has_a_marked_sample():
    assert {r.name for r in BUILTIN_RULES} == {rule for rule, _, _ in SAMPLES}


@pytest.mark.parametrize("rule,line,secret", SAMPLES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)])
def test_builtin_rule_masks_the_secret(rule, line, secret):
    """With the whole pack on, the secret goes; the mask names the rule itself or a
    rule at least as specific (a provider format beats a context rule beats a generic one)."""
    r = Redactor()
    out = r.redact(line)
    assert secret not in out
    names = re.findall(r"\[REDACTED:([^\]]+)\]", out)
    assert rule in names or any(PRIORITY[n] <= PRIORITY[rule] for n in names), (rule, out)
    assert sum(r.counts().values()) >= 1


@pytest.mark.parametrize("line", BENIGN)
def test_benign_lines_pass_untouched(line):
    assert REDACTOR.redact(line) == line


def test_pack_breadth():
    families = {r.family for r in BUILTIN_RULES}
    assert len(BUILTIN_RULES) >= 150
    assert families >= {"cloud", "vcs_ci", "registries", "chat_mail", "payments", "ai", "observability",
                        "infrastructure", "saas", "keys", "connections", "http", "cli", "config", "generic"}
    assert set(FAMILY.values()) == families


def test_only_the_secret_part_of_an_assignment_is_masked():
    assert REDACTOR.redact("DB_PASSWORD=hunter2hunter2") == "DB_PASSWORD=[REDACTED:assignment]"
    assert REDACTOR.redact("postgres://app:pw12345@db/x") == "postgres://app:[REDACTED:postgres_url_password]@db/x"


def test_policy_patterns_and_switches():
    r = Redactor([r"internal-[0-9]{4}"], builtin=False)
    assert r.redact(f"id internal-1234 {AWS_KEY}") == f"id [REDACTED:policy_0] {AWS_KEY}"
    off = Redactor(enabled=False)
    assert off.redact(AWS_KEY) == AWS_KEY


def test_bad_policy_regex_is_a_policy_error_naming_its_index():
    with pytest.raises(PolicyError) as info:
        Redactor(["ok", "(bad"])
    assert "redaction_patterns[1]" in str(info.value)


def test_patterns_the_fast_engine_rejects_still_match():
    # A backreference: hyperscan cannot compile it, the exact engine must run it.
    r = Redactor([r"(\w+)-\1-secret"], builtin=False)
    assert r.redact("x abc-abc-secret y") == "x [REDACTED:policy_0] y"


def test_every_builtin_rule_runs_in_the_fast_engine():
    compiled = REDACTOR._builtin
    if compiled.db is None:
        pytest.skip("hyperscan is not installed on this platform")
    assert [compiled.rules[i].name for i in compiled.slow] == []


def test_registered_secret_and_its_encodings():
    value = "p@ss w/ord+42"
    r = Redactor(builtin=False)
    r.add_secret(value, "DB")
    forms = [value, base64.b64encode(value.encode()).decode(), base64.urlsafe_b64encode(value.encode()).decode(),
             urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value), json.dumps(value)[1:-1]]
    for form in forms:
        out = r.redact(f"<{form}>")
        assert form not in out and "[REDACTED:secret:DB]" in out, form
    # Embedded in a longer base64 blob, at any of the three alignments.
    for prefix in (b"", b"a", b"ab"):
        blob = base64.b64encode(prefix + b"prefix:" + value.encode() + b":suffix").decode()
        assert "[REDACTED:secret:DB]" in r.redact(blob), prefix


@pytest.mark.parametrize("value", ["", "ab", "abc", "seven77"])
def test_short_secrets_are_refused_with_a_clear_error(value):
    r = Redactor(builtin=False)
    with pytest.raises(SecretRefused) as info:
        r.add_secret(value, "X")
    text = str(info.value)
    assert "'X'" in text and "at least 8 characters" in text and "Fix:" in text
    if value:
        assert value not in text  # the error never shows the value
    assert r.redact(f"x {value} y") == f"x {value} y"


def test_eight_characters_is_enough():
    r = Redactor(builtin=False)
    r.add_secret("eight888", "X")
    assert r.redact("a eight888 b") == "a [REDACTED:secret:X] b"
