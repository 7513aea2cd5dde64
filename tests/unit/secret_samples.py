"""Made-up credentials of every built-in kind (none is real), shared by tests.

The pack's own true positives are drawn from each rule's token format at load time
(sandbox.redact.samples), so no credential-shaped string is written here.
"""

from sandbox.redact import BUILTIN_RULES, PACK_SAMPLES

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAx3fakefakefakefakefakefakefakefakefakefakefake\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn\n"
    "-----END RSA PRIVATE KEY-----"
)
PRIORITY = {r.name: r.priority for r in BUILTIN_RULES}
FAMILY = {r.name: r.family for r in BUILTIN_RULES}

# (rule, line containing it, the secret part that must disappear): every marked sample.
SAMPLES = [(rid, s.text, s.secret) for rid, (tps, _) in PACK_SAMPLES.items() for s in tps if s.secret]
# The first marked sample of each rule (for tests that are costly per sample).
ONE_PER_RULE = list({rid: (rid, text, secret) for rid, text, secret in reversed(SAMPLES)}.values())

# Look-alikes that are not secrets: documented placeholders, ids, digests, versions,
# package files, masked values, and everyday log lines that use the keywords.
BENIGN = [
    "INFO starting server on port 8080",
    "GET /api/v1/users 200 12ms",
    "the password field is required",
    "Token refresh scheduled in 30s",
    "2026-11-24T02:00:00Z worker-3 processed 1500 rows",
    "https://example.org/docs/page?id=42",
    "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    # AWS's documented example credentials.
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "key AKIAIOSFODNN7EXAMPLE used",
    # Masked, templated and default values.
    "password: ********",
    "DB_PASSWORD=<redacted>",
    "api_key: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "token: ${GITHUB_TOKEN}",
    "password: ${{ secrets.DB_PASSWORD }}",
    "password=changeme",
    "secret: <your-secret-here>",
    "Authorization: Bearer <token>",
    "Authorization: Bearer ${TOKEN}",
    "postgres://app:${DB_PASSWORD}@db:5432/app",
    "password: [REDACTED:assignment]",
    # Generic keywords whose values are not secrets.
    "token_type=bearer",
    "max_tokens=512",
    '{"token_type": "Bearer", "expires_in": 3600}',
    "sort_key=created_at primary_key=id",
    "password_required=true",
    "auth: true",
    "secretName: db-credentials",
    "connect(password=password)",
    "self.password = password",
    "PASSWORD_FILE=/run/secrets/db_password",
    "--password-stdin",
    "docker login -u ci --password-stdin registry.example.com",
    "keyring==24.3.1",
    "cache miss for key user:1234, refetching",
    "tokenizers==0.15.2",
    # Identifiers, digests and versions.
    "request_id=3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a2b",
    "trace 550e8400-e29b-41d4-a716-446655440000 done",
    "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "HEAD is now at e83c5163316f89bfbde7d9ab23ca2e25604af290 Initial revision",
    "image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "Digest: sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "Successfully installed cryptography-42.0.5 keyring-24.3.1 tokenizers-0.15.2",
    "Downloading secretstorage-3.3.3-py3-none-any.whl (15 kB)",
    "Collecting pyjwt==2.8.0 oauthlib>=3.2.2 passlib[bcrypt]==1.7.4",
    "npm WARN deprecated token-stream@0.0.1",
    "python-3.11.9-amd64.exe token-bucket-0.3.0.tar.gz",
    "version 1.24.3-alpine3.19 (build 20240101.1)",
    "kernel 6.8.0-45-generic #45-Ubuntu SMP PREEMPT_DYNAMIC x86_64",
    "-----BEGIN CERTIFICATE-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ci@example",
    "Set-Cookie: theme=dark; Path=/",
    "X-Request-Id: 7d2f1c8e-4b1a-4e2b-9c3d-5f6a7b8c9d0e",
    "machine learning model loaded; password policy updated",
    "the private key is stored in vault",
    "root:*:19000:0:99999:7:::",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0",
    "jdbc:postgresql://db:5432/app?user=app&ssl=true",
    "https://github.com/org/repo/blob/4b825dc642cb6eb9a060e54bf8d69288fbee4904/README.md",
]
