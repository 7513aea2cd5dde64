def test_a_job_that_leaks_its_credentials_is_redacted(sandbox):
    r = sandbox("localhost/cleanroom/busybox:latest",
                ["/bin/sh", "-c", "echo connecting with password=hunter2-secret; echo AKIAIOSFODNN7EXAMPLE >&2"])
    assert r.exit_code == 0
    assert "hunter2-secret" not in r.stdout and "AKIAIOSFODNN7EXAMPLE" not in r.stderr
    assert r.redactions
