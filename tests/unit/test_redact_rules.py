import pytest
from secret_samples import BENIGN, SAMPLES

from sandbox.errors import PolicyError
from sandbox.redact import BUILTIN_RULES, Redactor


def test_every_builtin_kind_has_a_sample():
    assert {r.name for r in BUILTIN_RULES} == {rule for rule, _, _ in SAMPLES}


@pytest.mark.parametrize("rule,line,secret", SAMPLES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)])
def test_builtin_rule_masks_the_secret(rule, line, secret):
    r = Redactor()
    out = r.redact(line)
    assert secret not in out
    assert f"[REDACTED:{rule}]" in out
    assert r.counts()[rule] >= 1


@pytest.mark.parametrize("line", BENIGN)
def test_benign_lines_pass_untouched(line):
    assert Redactor().redact(line) == line


def test_only_the_secret_part_of_an_assignment_is_masked():
    assert Redactor().redact("DB_PASSWORD=hunter2hunter2") == "DB_PASSWORD=[REDACTED:assignment]"
    assert Redactor().redact("postgres://app:pw12345@db/x") == "postgres://app:[REDACTED:url_password]@db/x"


def test_policy_patterns_and_switches():
    r = Redactor([r"internal-[0-9]{4}"], builtin=False)
    assert r.redact("id internal-1234 AKIAIOSFODNN7EXAMPLE") == "id [REDACTED:policy_0] AKIAIOSFODNN7EXAMPLE"
    off = Redactor(enabled=False)
    assert off.redact("AKIAIOSFODNN7EXAMPLE") == "AKIAIOSFODNN7EXAMPLE"


def test_bad_policy_regex_is_a_policy_error_naming_its_index():
    with pytest.raises(PolicyError) as info:
        Redactor(["ok", "(bad"])
    assert "redaction_patterns[1]" in str(info.value)


def test_patterns_the_fast_engine_rejects_still_match():
    # A backreference: hyperscan cannot compile it, the exact engine must run it.
    r = Redactor([r"(\w+)-\1-secret"], builtin=False)
    assert r.redact("x abc-abc-secret y") == "x [REDACTED:policy_0] y"


def test_registered_secret_and_its_encodings():
    import base64
    import json
    import urllib.parse

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


def test_short_secrets_are_refused():
    r = Redactor(builtin=False)
    r.add_secret("ab", "X")
    assert r.redact("ab") == "ab"
