"""Policy control of redaction: built-in rules switched off by id, extra rules checked
like the built-in pack, user regexes validated in the redactor's own dialect."""

import pytest

from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig
from sandbox.redact import Redactor
from sandbox.redact.samples import expand

SP = "[cleanroom.security_policy]\n"
GH = expand("ghp_⟨a36⟩", "policy:gh").text


def load(text):
    return CleanroomConfig.from_toml(SP + text, file="p.toml")


def test_disabled_rule_is_not_applied():
    cfg = load('redaction_rules_disabled = ["github_pat"]\n')
    r = Redactor.from_policy(cfg.security_policy)
    assert GH in r.redact(f"token {GH}")
    assert GH not in Redactor().redact(f"token {GH}")


def test_unknown_disabled_id_names_the_key_and_suggests():
    with pytest.raises(PolicyError) as info:
        load('redaction_rules_disabled = ["github_pta"]\n')
    text = str(info.value)
    assert "redaction_rules_disabled[0]" in text and "did you mean 'github_pat'" in text and "p.toml:2" in text


def test_extra_rule_masks_and_is_named():
    cfg = load('redaction_rules = [{ id = "acme_key", regex = \'acme_[a-z0-9]{12}\', keywords = ["acme_"], '
               'examples = ["key «acme_0123456789ab»"], non_examples = ["acme_short"] }]\n')
    r = Redactor.from_policy(cfg.security_policy)
    assert r.redact("x acme_abcdefabcdef y") == "x [REDACTED:acme_key] y"


@pytest.mark.parametrize("rule,where,why", [
    ('{ id = "x1", regex = "(bad" }', "redaction_rules[0].regex", "invalid regular expression"),
    ('{ id = "x1", regex = "" }', "redaction_rules[0].regex", "non-empty"),
    ('{ id = "x1", regex = "a+", examples = ["bbb"] }', "redaction_rules[0].examples[0]", "not matched"),
    ('{ id = "x1", regex = "a+", non_examples = ["aaa"] }', "redaction_rules[0].non_examples[0]", "false positive"),
    ('{ id = "github_pat", regex = "a+" }', "redaction_rules[0].id", "built-in rule id"),
    ('{ id = "Bad Id", regex = "a+" }', "redaction_rules[0].id", "not a rule id"),
    ('{ id = "x1", regex = "a+", color = "red" }', "redaction_rules[0].color", "unknown key"),
])
def test_bad_extra_rules_name_their_key(rule, where, why):
    with pytest.raises(PolicyError) as info:
        load(f"redaction_rules = [{rule}]\n")
    assert where in str(info.value) and why in str(info.value)


def test_duplicate_extra_ids_are_refused():
    with pytest.raises(PolicyError, match=r"redaction_rules\[1\]\.id.*duplicate"):
        load('redaction_rules = [{ id = "a1", regex = "a+" }, { id = "a1", regex = "b+" }]\n')


def test_patterns_are_validated_in_the_redactors_dialect():
    cfg = load("redaction_patterns = ['name=\\p{L}+']\n")
    assert Redactor.from_policy(cfg.security_policy).redact("name=Zoë") == "[REDACTED:policy_0]"
    with pytest.raises(PolicyError, match=r"redaction_patterns\[0\].*invalid regular expression"):
        load("redaction_patterns = ['(?<']\n")
