"""The pack's validation is skipped only for the very files and code an earlier process
validated: a changed or broken pack file is checked (and refused) again."""

import pytest

import sandbox.redact.pack as pack
from sandbox.errors import PolicyError

GOOD = 'family = "cloud"\n[[rule]]\nid = "tok"\npattern = \'\'\'\\b(?P<s>tok_[a-z]{12})\\b\'\'\'\n' \
       'tp = ["x = «tok_⟨L12⟩»"]\nfp = ["tok_short"]\n'


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(pack, "PACK_DIR", tmp_path)
    calls = []
    real = pack.check_rule
    monkeypatch.setattr(pack, "check_rule", lambda *a: calls.append(a[0].name) or real(*a))
    return tmp_path, calls


def test_a_validated_pack_is_not_validated_again_by_a_later_load(isolated):
    d, calls = isolated
    (d / "cloud.toml").write_text(GOOD)
    pack.load_pack(["cloud"], reuse_validation=True)
    assert calls == ["tok"]  # first load: checked, and stamped
    rules, _ = pack.load_pack(["cloud"], reuse_validation=True)
    assert calls == ["tok"] and [r.name for r in rules] == ["tok"]
    pack.load_pack(["cloud"])  # without reuse: always checked
    assert calls == ["tok", "tok"]


def test_a_changed_pack_file_misses_the_stamp_and_a_bad_one_is_refused(isolated):
    d, calls = isolated
    (d / "cloud.toml").write_text(GOOD)
    pack.load_pack(["cloud"], reuse_validation=True)
    (d / "cloud.toml").write_text(GOOD.replace('fp = ["tok_short"]', 'fp = ["tok_abcdefghijkl"]'))
    with pytest.raises(PolicyError, match="false positive matched"):
        pack.load_pack(["cloud"], reuse_validation=True)
    assert calls == ["tok", "tok"]
