def test_a_job_that_leaks_its_credentials_is_redacted(sandbox):
    r = sandbox("localhost/cleanroom/busybox:latest",
                ["/bin/sh", "-c", "echo connecting with password=hunter2-secret; echo AKIAIOSFODNN7EXAMPLE >&2"])
    assert r.exit_code == 0
    assert "hunter2-secret" not in r.stdout and "AKIAIOSFODNN7EXAMPLE" not in r.stderr
    assert r.redactions


def test_a_batch_job_is_measured_while_it_runs(sandbox):
    # With enable_memory_tracking (policies/ci.toml), the result carries the job's usage over time.
    r = sandbox("localhost/cleanroom/busybox:latest",
                ["/bin/sh", "-c", "dd if=/dev/zero of=/tmp/batch bs=1M count=32 2>/dev/null; "
                                  "timeout 1 /bin/sh -c 'while :; do :; done'; rm /tmp/batch; sleep 0.5"])
    assert r.exit_code == 0
    assert r.usage.peak_memory_bytes >= 32 << 20
    assert len(r.timeseries) >= 3 and max(s.memory_bytes for s in r.timeseries) >= 32 << 20
