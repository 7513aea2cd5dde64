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
