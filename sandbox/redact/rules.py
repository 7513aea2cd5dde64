"""Built-in redaction rules: common credentials, on by default.

Each rule masks its named group ``s`` when it has one (the secret part of
``password=...``), else the whole match. Patterns avoid look-arounds so that the
fast multi-pattern engine (hyperscan) can take them.
"""

from __future__ import annotations

import msgspec


class Rule(msgspec.Struct, frozen=True):
    name: str
    pattern: str
    # Rules whose matches may span many lines get a larger stream look-behind,
    # starting at the last occurrence of their opener.
    multiline: bool = False
    opener: str | None = None


_ASSIGN_KEYS = r"(?:password|passwd|pwd|secret|client_secret|token|access_token|auth_token|api_key|apikey|private_key)"

BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("aws_access_key_id", r"\b(?P<s>(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})\b"),
    Rule("aws_secret_access_key",
         r"(?i:aws_?secret_?access_?key|aws_?secret_?key)[\"']?\s*[=:]\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})"),
    Rule("github_token", r"\b(?P<s>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    Rule("gitlab_token", r"\b(?P<s>glpat-[A-Za-z0-9_\-]{20,})"),
    Rule("slack_token", r"\b(?P<s>xox[abposr]-[A-Za-z0-9-]{10,})"),
    Rule("slack_webhook", r"(?P<s>https://hooks\.slack\.com/services/[A-Za-z0-9/_+\-]{20,})"),
    Rule("stripe_key", r"\b(?P<s>(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})"),
    Rule("google_api_key", r"\b(?P<s>AIza[0-9A-Za-z_\-]{35})"),
    Rule("jwt", r"\b(?P<s>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"),
    Rule("private_key_pem",
         r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
         multiline=True, opener="-----BEGIN"),
    Rule("url_password", r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,128}:(?P<s>[^\s@/]{1,256})@"),
    Rule("authorization_header",
         r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?i:bearer|basic|token)\s+(?P<s>[A-Za-z0-9._~+/=\-]{6,})"),
    # password=..., "password": "...", password: ... (env, JSON, YAML); the value only.
    Rule("assignment",
         r"(?i:" + _ASSIGN_KEYS + r")[\"']?[ \t]*[=:][ \t]*[\"']?(?P<s>[^\s\"',;]{3,})"),
)
