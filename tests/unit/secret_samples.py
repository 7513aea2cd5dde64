"""Made-up credentials of every built-in kind (none is real), shared by tests."""

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAx3fakefakefakefakefakefakefakefakefakefakefake\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn\n"
    "-----END RSA PRIVATE KEY-----"
)

# (rule, line containing it, the secret part that must disappear)
SAMPLES = [
    ("aws_access_key_id", "key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github_token", "token ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8" + " end", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"),
    ("gitlab_token", "GL glpat-abcdefghij1234567890 here", "glpat-abcdefghij1234567890"),
    ("slack_token", "slack xoxb-123456789012-abcdefghijkl", "xoxb-123456789012-abcdefghijkl"),
    ("slack_webhook", "hook https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXX",
     "hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXX"),
    ("stripe_key", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("google_api_key", "maps AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("jwt", "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJzdWIiOiIxMjM0NTY3ODkwIn0"),
    ("private_key_pem", "key:\n" + PEM + "\nafter", "MIIEowIBAAKCAQEAx3fake"),
    ("url_password", "db postgres://app:Sup3rS3cret@db.internal:5432/x", "Sup3rS3cret"),
    ("authorization_header", "Authorization: Bearer abc.def-ghi_jklmnop", "abc.def-ghi_jklmnop"),
    ("authorization_header", "authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("assignment", "DB_PASSWORD=hunter2hunter2", "hunter2hunter2"),
    ("assignment", '{"password": "json-secret-1"}', "json-secret-1"),
    ("assignment", "api_key: yaml-secret-2", "yaml-secret-2"),
    ("assignment", "client_secret='quoted-secret-3'", "quoted-secret-3"),
]

BENIGN = [
    "INFO starting server on port 8080",
    "GET /api/v1/users 200 12ms",
    "the password field is required",
    "Token refresh scheduled in 30s",
    "2026-11-24T02:00:00Z worker-3 processed 1500 rows",
    "https://example.org/docs/page?id=42",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
]
