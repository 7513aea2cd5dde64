"""The built-in pack validates itself on load; a rule whose true positive is not
masked, or whose false positive is, is an error naming the file and rule."""

import pytest

from sandbox.errors import PolicyError
from sandbox.redact import BUILTIN_RULES, PACK_SAMPLES
from sandbox.redact.pack import FAMILIES, PACK_DIR, load_pack
from sandbox.redact.rules import Rule
from sandbox.redact.samples import expand
from sandbox.redact.validate import check_rule, mask_one


def fail(field, message, allowed):
    return PolicyError(message, key=f"rule t.{field}", allowed=allowed)


def test_loading_the_pack_checks_every_rule_again():
    rules, samples = load_pack()
    assert rules == BUILTIN_RULES and len(rules) >= 150
    for rule in rules:
        tps, fps = samples[rule.name]
        assert tps and fps, rule.name
        check_rule(rule, tps, fps, fail)  # the same check the loader ran


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=[r.name for r in BUILTIN_RULES])
def test_each_rule_alone_masks_its_true_positives_and_spares_its_false_ones(rule):
    tps, fps = PACK_SAMPLES[rule.name]
    for sample in tps:
        out, n = mask_one(rule, sample.text)
        assert n and (sample.secret is None or sample.secret not in out), sample.text
    for sample in fps:
        assert mask_one(rule, sample.text)[1] == 0, sample.text


def test_a_true_positive_that_does_not_match_fails_validation():
    rule = Rule("tt", r"\bxyz_[a-z]{10}\b")
    with pytest.raises(PolicyError, match=r"rule t\.examples\[0\].*true positive not matched"):
        check_rule(rule, [expand("token xyz_⟨L5⟩", "s")], [], fail)


def test_a_false_positive_that_matches_fails_validation():
    rule = Rule("tt", r"\bxyz_[a-z]{5,}\b")
    with pytest.raises(PolicyError, match=r"non_examples\[0\].*false positive matched"):
        check_rule(rule, [expand("«xyz_⟨L8⟩»", "s")], [expand("xyz_⟨L6⟩", "f")], fail)


def test_a_secret_that_survives_fails_validation():
    rule = Rule("tt", r"key=(?P<s>[a-z]{3})")
    with pytest.raises(PolicyError, match="secret survives"):
        check_rule(rule, [expand("key=«⟨L8⟩»", "s")], [], fail)


def test_a_bad_pack_file_names_file_and_rule(tmp_path, monkeypatch):
    (tmp_path / "cloud.toml").write_text('family = "cloud"\n[[rule]]\nid = "bad_one"\npattern = "(unclosed"\n'
                                         'tp = ["x"]\nfp = ["y"]\n')
    monkeypatch.setattr("sandbox.redact.pack.PACK_DIR", tmp_path)
    with pytest.raises(PolicyError) as info:
        load_pack(["cloud"])
    assert "cloud.toml" in str(info.value) and "rule bad_one.regex" in str(info.value)


def test_samples_are_drawn_from_the_format_and_reproducible():
    a, b = expand("id «ghp_⟨a36⟩» end", "seed"), expand("id «ghp_⟨a36⟩» end", "seed")
    assert a == b and a.secret.startswith("ghp_") and len(a.secret) == 40 and a.text == f"id {a.secret} end"
    assert expand("⟨g⟩", "x").text.count("-") == 4


def test_every_family_has_a_file_and_small_files():
    for family in FAMILIES:
        path = PACK_DIR / f"{family}.toml"
        assert len(path.read_text().splitlines()) < 300, path
