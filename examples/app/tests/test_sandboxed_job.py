from pathlib import Path

from sandbox import Mount

APP = Path(__file__).resolve().parents[1]
PYTHON = "localhost/cleanroom/python:bookworm"
KEY = "AKIAQX7RT4NB2LW9KD3E"  # shaped like a real AWS access key id (not a live one)


def test_a_job_that_leaks_its_credentials_is_redacted(sandbox):
    r = sandbox("localhost/cleanroom/busybox:latest",
                ["/bin/sh", "-c", f"echo connecting with password=hunter2-secret; echo {KEY} >&2; "
                                  "echo docs use AKIAIOSFODNN7EXAMPLE"])
    assert r.exit_code == 0
    assert "hunter2-secret" not in r.stdout and KEY not in r.stderr
    assert r.redactions
    # AWS's documented example key is a placeholder, not a secret: it stays readable.
    assert "docs use AKIAIOSFODNN7EXAMPLE" in r.stdout


def test_a_batch_job_is_measured_while_it_runs(sandbox):
    # With enable_memory_tracking (policies/ci.toml), the result carries the job's usage over time.
    r = sandbox("localhost/cleanroom/busybox:latest",
                ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/batch bs=1M count=32 2>/dev/null; "
                                  "timeout 1 /bin/sh -c 'while :; do :; done'; rm /tmp/batch; sleep 0.5"])
    assert r.exit_code == 0
    assert r.usage.peak_memory_bytes >= 32 << 20
    assert len(r.timeseries) >= 3 and max(s.memory_bytes for s in r.timeseries) >= 32 << 20


def test_the_nightly_job_runs_in_a_sandbox_with_the_app_mounted_read_only(sandbox):
    # jobs.py runs only here, inside the sandbox: with --cleanroom-coverage-report (and
    # enable_coverage_tracking) its lines still show as covered, at their path in this checkout.
    users = b"".join(b'{"name": "%s", "email": "%s"}\n' % u for u in
                     [(b"ada", b"ada@Example.org"), (b"grace", b"grace@example.org"), (b"linus", b"l@kernel.org")])
    r = sandbox(PYTHON, ["python3", "-m", "jobs"], mounts=[Mount(str(APP), "/app")], workdir="/app", stdin=users)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == ["example.org 2", "kernel.org 1"]
