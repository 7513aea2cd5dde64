"""Generic detection: a secret-ish key, an assignment in any common syntax, and a value
that passes the key's gate; placeholders and plain values stay."""

import pytest

from sandbox.redact import Redactor
from sandbox.redact.samples import expand

R = Redactor()
RANDOM40 = expand("⟨a40⟩", "generic:40").text
SYNTAXES = [
    "FOO_API_KEY={v}",
    "export FOO_API_KEY={v}",
    'FOO_API_KEY="{v}"',
    '{{"foo_api_key": "{v}"}}',
    "foo_api_key: {v}",
    'foo_api_key = "{v}"',
    "foo.api.key={v}",
    "<fooApiKey>{v}</fooApiKey>",
    "'foo_api_key' => '{v}',",
    "fooApiKey := {v}",
    "myapp --foo-api-key {v}",
    "myapp --foo-api-key={v}",
    '{{\\"foo_api_key\\": \\"{v}\\"}}',
]


@pytest.mark.parametrize("template", SYNTAXES)
def test_unlisted_provider_key_is_masked_in_every_syntax(template):
    line = template.format(v=RANDOM40)
    out = R.redact(line)
    assert RANDOM40 not in out and "[REDACTED:" in out, out


@pytest.mark.parametrize("line", [
    "token_type=bearer", "max_tokens=512", "password: ********", "password=<redacted>", "API_KEY=${API_KEY}",
    "password: changeme", "api_key=xxxxxxxxxxxxxxxxxxxx", "sort_key=created_at", "cache_key=user:12345",
    "auth: true", "token: refresh", "key=value", "connect(password=password)", "password=self.password",
    "access_key_id: AKIAIOSFODNN7EXAMPLE", "public_key=" + RANDOM40, "tokenizers==0.15.2",
    "ssh_key_path=/home/ci/.ssh/id_ed25519", "token = ${{ secrets.TOKEN }}",
])
def test_plain_or_placeholder_values_stay(line):
    assert R.redact(line) == line


def test_a_password_is_masked_even_when_plain():
    assert R.redact("DB_PASSWORD=hunter2-xyz") == "DB_PASSWORD=[REDACTED:assignment]"
    assert R.redact("smtp_pass: letmein99") != "smtp_pass: letmein99"


def test_low_entropy_token_value_stays_but_a_random_one_goes():
    assert R.redact("token=aaaaaaaaaaaaaaaa") == "token=aaaaaaaaaaaaaaaa"
    assert "[REDACTED:assignment]" in R.redact("token=abc123-secret")
