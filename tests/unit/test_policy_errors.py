"""Bad policies: each is a PolicyError naming file, key path, line and what is allowed."""

from __future__ import annotations

import pytest

from sandbox.errors import PolicyError
from sandbox.policy import CleanroomConfig
from sandbox.policy.loader import policy_errors

# (case, toml, key path, line or None, text that must appear in "allowed")
CASES = [
    ("unknown key", "[cleanroom]\nsingleton = true\n", "cleanroom.singleton", 2, "enable_singleton_containers"),
    ("unknown nested key", "[cleanroom.resource_limits]\nmax_cpu = 5\n",
     "cleanroom.resource_limits.max_cpu", 2, "max_cpu_usage_percent"),
    ("wrong type", '[cleanroom]\nenable_tracing = "yes"\n', "cleanroom.enable_tracing", 2, "true or false"),
    ("negative size", "[cleanroom.resource_limits]\nmax_memory_usage_bytes = -1\n",
     "cleanroom.resource_limits.max_memory_usage_bytes", 2, ">= 1"),
    ("bad size string", '[cleanroom.resource_limits]\nmax_memory_usage_bytes = "lots"\n',
     "cleanroom.resource_limits.max_memory_usage_bytes", 2, "8GiB"),
    ("percent over 100", "[cleanroom.resource_limits]\nmax_cpu_usage_percent = 150.0\n",
     "cleanroom.resource_limits.max_cpu_usage_percent", 2, "<= 100"),
    ("port out of range", "[cleanroom.security_policy]\nallowed_ports = [5432, 70000]\n",
     "cleanroom.security_policy.allowed_ports[1]", 2, "<= 65535"),
    ("port zero", "[cleanroom.security_policy]\nallowed_ports = [0]\n",
     "cleanroom.security_policy.allowed_ports[0]", 2, ">= 1"),
    ("invalid CIDR", '[cleanroom.security_policy]\nblocked_addresses = ["10.0.0.0/8", "10.0.0.0/99"]\n',
     "cleanroom.security_policy.blocked_addresses[1]", 2, "10.0.0.0/8"),
    ("invalid regex", '[cleanroom.security_policy]\nredaction_patterns = ["ok", "(unclosed"]\n',
     "cleanroom.security_policy.redaction_patterns[1]", 2, "regular expressions"),
    ("unknown security level", '[cleanroom.security_policy]\nsecurity_level = "Ultra"\n',
     "cleanroom.security_policy.security_level", 2, "Maximum"),
    ("unknown audit level", '[cleanroom.security_policy]\naudit_level = "Everything"\n',
     "cleanroom.security_policy.audit_level", 2, "Minimal"),
    ("unknown capability", '[cleanroom.security_policy]\nallowed_capabilities = ["CAP_FLY"]\n',
     "cleanroom.security_policy.allowed_capabilities[0]", 2, "CHOWN"),
    ("typo'd section read as an overlay", "[cleanroom.resource_limit]\nmax_cpu_usage_percent = 50.0\n",
     "cleanroom.resource_limit", 1, "resource_limits"),
    ("unknown key in an overlay", "[cleanroom.staging]\nmax_cpu_usage_percent = 50.0\n",
     "cleanroom.staging.max_cpu_usage_percent", 2, "resource_limits"),
    ("bad key in unselected overlay", "[cleanroom]\n\n[cleanroom.prod]\ntest_execution_timeout = -3\n",
     "cleanroom.prod.test_execution_timeout", 4, ">"),
    ("swap below memory", '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "256MiB"\nmemory_swap_bytes = "128MiB"\n',
     "cleanroom.resource_limits.sandbox.memory_swap_bytes", 3, ">= resource_limits.sandbox.memory_bytes"),
    ("unknown top-level table", "[other]\nx = 1\n", "other", 1, "[cleanroom]"),
    ("bad duration", '[cleanroom]\ncontainer_startup_timeout = "soon"\n',
     "cleanroom.container_startup_timeout", 2, "30s"),
    ("origin field is not a key", '[cleanroom]\nsource_file = "x"\n', "cleanroom.source_file", 2, "test_execution_timeout"),
    ("infinite duration", "[cleanroom]\ntest_execution_timeout = inf\n", "cleanroom.test_execution_timeout", 2, "finite"),
    ("nan percent", "[cleanroom.resource_limits]\nmax_cpu_usage_percent = nan\n",
     "cleanroom.resource_limits.max_cpu_usage_percent", 2, "finite"),
    ("size beyond int64", '[cleanroom.resource_limits]\nmax_disk_usage_bytes = "100000PiB"\n',
     "cleanroom.resource_limits.max_disk_usage_bytes", 2, "<= 9223372036854775807"),
    ("boolean size", "[cleanroom.resource_limits.sandbox]\nmemory_bytes = true\n",
     "cleanroom.resource_limits.sandbox.memory_bytes", 2, "512MiB"),
    ("zero per-sandbox cpu", "[cleanroom.resource_limits.sandbox]\ncpu_percent = 0\n",
     "cleanroom.resource_limits.sandbox.cpu_percent", 2, "> 0"),
    ("io weight below 10", "[cleanroom.resource_limits.sandbox]\nio_weight = 5\n",
     "cleanroom.resource_limits.sandbox.io_weight", 2, ">= 10"),
    ("zero container count", "[cleanroom.resource_limits]\nmax_container_count = 0\n",
     "cleanroom.resource_limits.max_container_count", 2, ">= 1"),
    ("zero metrics interval", "[cleanroom.performance_monitoring]\nmetrics_interval = 0\n",
     "cleanroom.performance_monitoring.metrics_interval", 2, ">"),
    ("unknown threshold", "[cleanroom.performance_monitoring.thresholds]\nmax_cpu = 5\n",
     "cleanroom.performance_monitoring.thresholds.max_cpu", 2, "max_container_startup_time"),
    ("port given as a string", '[cleanroom.security_policy]\nallowed_ports = ["5432"]\n',
     "cleanroom.security_policy.allowed_ports[0]", 2, "an integer"),
    ("unknown network mode", '[cleanroom.security_policy]\nnetwork_mode = "bridge"\n',
     "cleanroom.security_policy.network_mode", 2, "none, egress, allowlist"),
    ("allowlist without addresses", '[cleanroom.security_policy]\nnetwork_mode = "allowlist"\n',
     "cleanroom.security_policy.allowed_addresses", 1, "CIDRs"),
    ("invalid allowed CIDR", '[cleanroom.security_policy]\nallowed_addresses = ["example.com"]\n',
     "cleanroom.security_policy.allowed_addresses[0]", 2, "10.0.0.0/8"),
    ("hmac key env not a name", '[cleanroom.security_policy]\naudit_hmac_key_env = "MY KEY"\n',
     "cleanroom.security_policy.audit_hmac_key_env", 2, "environment variable"),
    ("dotted key", "[cleanroom]\nenable_tracing = true\nresource_limits.max_cpu_usage_percent = 0\n",
     "cleanroom.resource_limits.max_cpu_usage_percent", 3, "> 0"),
    ("inline-table overlay", "[cleanroom]\n\ndev = { resource_limits = { max_container_count = 0 } }\n",
     "cleanroom.dev.resource_limits.max_container_count", 3, ">= 1"),
    ("overlay inside an overlay", "[cleanroom.dev]\nenable_tracing = true\n[cleanroom.dev.staging]\nenable_tracing = true\n",
     "cleanroom.dev.staging", 3, "enable_singleton_containers"),
    ("overlay breaks a cross-key rule", '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "1GiB"\n'
     '[cleanroom.prod.resource_limits.sandbox]\nmemory_swap_bytes = "512MiB"\n',
     "cleanroom.prod.resource_limits.sandbox.memory_swap_bytes", 4, "memory_bytes"),
    ("element of a multi-line list", '[cleanroom.security_policy]\nredaction_patterns = [\n    "password\\\\s*=",  # ok ]\n'
     '    \'lit]eral\', "esc\\"aped",\n    "(unclosed",\n]\n', "cleanroom.security_policy.redaction_patterns[3]", 5,
     "regular expressions"),
    ("key after a multi-line list", '[cleanroom.security_policy]\nallowed_ports = [\n  5432,\n]\naudit_level = "Loud"\n',
     "cleanroom.security_policy.audit_level", 5, "Maximum"),
    ("cleanroom not a table", "cleanroom = 5\n", "cleanroom", 1, "[cleanroom]"),
    ]


@pytest.mark.parametrize("case,text,key,line,allowed", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_file_key_line_and_allowed(case, text, key, line, allowed):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(text, file="team/cleanroom.toml")
    err = info.value
    msg = str(err)
    assert err.file == "team/cleanroom.toml" and "team/cleanroom.toml" in msg
    assert err.key == key and key in msg
    assert err.line == line
    assert err.allowed and allowed in err.allowed and allowed in msg


@pytest.mark.parametrize("text,hint", [
    ("[cleanroom.resource_limits]\nmax_cpu_usage_percen = 5\n", "did you mean 'max_cpu_usage_percent'?"),
    ("[cleanroom]\nenable_singleton_container = true\n", "did you mean 'enable_singleton_containers'?"),
    ("[cleanroom.securty_policy]\nsecurity_level = \"High\"\n", "did you mean [cleanroom.security_policy]?"),
])
def test_near_misses_get_a_suggestion(text, hint):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(text)
    assert hint in str(info.value)


@pytest.mark.parametrize("text,reason", [
    ("[cleanroom]\nenable_tracing = 1\n", "wrong type (got an integer)"),
    ("[cleanroom.resource_limits]\nmax_container_count = 0\n", "out of range"),
    ('[cleanroom.security_policy]\nsecurity_level = "Ultra"\n', "unknown value 'Ultra'"),
])
def test_reasons_are_words_not_msgspec_phrases(text, reason):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(text)
    assert info.value.reason == reason and "`" not in str(info.value)


def test_toml_syntax_error_has_a_line():
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml("[cleanroom]\nx = = 1\n", file="p.toml")
    assert info.value.line == 2 and "p.toml:2" in str(info.value)


def test_unknown_overlay_lists_the_available_ones():
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml("[cleanroom.dev]\n[cleanroom.prod]\n", file="p.toml", overlay="staging")
    assert "staging" in str(info.value) and "dev, prod" in str(info.value)


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_file(tmp_path / "nope.toml")
    assert "not found" in str(info.value) and "nope.toml" in str(info.value)


# Property: whatever value lands on whatever key, the loader answers with a policy or
# a PolicyError naming the file – never another exception (the CLI would show a traceback).
import json  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sandbox.policy import check_policy, effective_isolation  # noqa: E402
from sandbox.policy.model import SUBTABLES, field_names  # noqa: E402

_TABLES = [("", CleanroomConfig)] + [(name, struct) for name, struct in SUBTABLES.items()]
_scalar = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: "nan" if f != f else ("inf" if f == float("inf") else ("-inf" if f == float("-inf") else repr(f)))),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=12).map(json.dumps),
    st.sampled_from(['"8GiB"', '"1.5GB"', '"-3MiB"', '"30s"', '"5m"', '"High"', '"none"', '"10.0.0.0/8"',
                     '"CAP_CHOWN"', '"("', "1979-05-27", "07:32:00"]),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
                   _scalar.map(lambda v: "{ x = " + v + " }"))


@st.composite
def _documents(draw):
    table, struct = draw(st.sampled_from(_TABLES))
    key = draw(st.sampled_from(field_names(struct) + ["typo_key"]))
    overlay = draw(st.sampled_from(["", "dev."]))
    header = "cleanroom" + ("." + overlay.rstrip(".") if overlay else "") + ("." + table if table else "")
    return f"[{header}]\n{key} = {draw(_value)}\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents(), st.sampled_from([None, "dev"]))
def test_any_value_on_any_key_is_a_policy_or_a_policy_error(text, env):
    try:
        cfg = CleanroomConfig.from_toml(text, file="fuzz.toml", overlay=env)
    except PolicyError as exc:
        assert exc.file == "fuzz.toml" and str(exc).startswith("fuzz.toml")
        return
    check_policy(cfg)
    effective_isolation(cfg.security_policy)
    cfg.digest()


# -- every error of a file, not only the first ---------------------------------------
MANY = """[cleanroom]
enable_tracing = "yes"
test_execution_timeout = "soon"
[cleanroom.resource_limits]
max_cpu = 3
max_cpu_usage_percent = nan
[cleanroom.security_policy]
allowed_ports = [5432, 0, 6379,
                 70000]
blocked_addresses = ["10.0.0.0/99"]
security_level = "Ultra"
[cleanroom.prod]
container_startup_timeout = -1
"""


def test_every_error_of_a_file_is_collected_with_its_line():
    _, errors = policy_errors(MANY, file="many.toml", into=CleanroomConfig)
    found = sorted((e.line, e.key) for e in errors)
    assert found == [
        (2, "cleanroom.enable_tracing"),
        (3, "cleanroom.test_execution_timeout"),
        (5, "cleanroom.resource_limits.max_cpu"),
        (6, "cleanroom.resource_limits.max_cpu_usage_percent"),
        (8, "cleanroom.security_policy.allowed_ports[1]"),
        (9, "cleanroom.security_policy.allowed_ports[3]"),  # its index as written, after [1] was taken out
        (10, "cleanroom.security_policy.blocked_addresses[0]"),
        (11, "cleanroom.security_policy.security_level"),
        (13, "cleanroom.prod.container_startup_timeout"),  # the base's errors are not repeated per overlay
    ]
    assert all(e.file == "many.toml" for e in errors)


def test_the_raised_error_is_the_first_and_carries_them_all():
    with pytest.raises(PolicyError) as info:
        CleanroomConfig.from_toml(MANY, file="many.toml")
    assert len(info.value.errors) == 9 and info.value.errors[0] is info.value


def test_a_cross_key_rule_is_not_judged_on_a_stand_in_default():
    # memory_bytes is bad (its 512 MiB default stands in): "swap below memory" would be noise.
    text = '[cleanroom.resource_limits.sandbox]\nmemory_bytes = "lots"\nmemory_swap_bytes = "256MiB"\n'
    _, errors = policy_errors(text, into=CleanroomConfig)
    assert [e.key for e in errors] == ["cleanroom.resource_limits.sandbox.memory_bytes"]


def test_a_good_file_has_no_errors():
    cfg, errors = policy_errors("[cleanroom]\ntest_execution_timeout = 60\n", file="ok.toml", into=CleanroomConfig)
    assert errors == [] and cfg.test_execution_timeout == 60 and cfg.source_file == "ok.toml"


def test_several_non_finite_items_of_one_list_are_each_reported():
    _, errors = policy_errors("[cleanroom.security_policy]\nallowed_ports = [inf, 5432, nan]\n", into=CleanroomConfig)
    assert [e.key for e in errors] == ["cleanroom.security_policy.allowed_ports[0]",
                                       "cleanroom.security_policy.allowed_ports[2]"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_documents(), min_size=2, max_size=5))
def test_collecting_every_error_never_crashes_and_agrees_with_loading(docs):
    # Several tables, keys repeated across them: TOML may refuse the file, the loader
    # must still answer with errors (never an exception of its own).
    text = "".join(docs)
    cfg, errors = policy_errors(text, file="fuzz.toml", into=CleanroomConfig)
    assert (cfg is None) == bool(errors)
    assert all(e.file == "fuzz.toml" for e in errors)
