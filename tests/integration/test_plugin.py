"""The pytest plugin end to end, in real pytest subprocesses against real services."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from podman_helpers import containers_with_label

CONFTEST = '''
import pytest

@pytest.fixture(scope="session")
def cleanroom_postgres_setup():
    return lambda conn: conn.execute("CREATE TABLE base (id int)")
'''

MODULE = '''
import os

def test_creates_a_table(postgres_db):
    assert postgres_db.execute_query("SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") == [["0"]]
    postgres_db.execute_sql("CREATE TABLE mine (x int)")
    postgres_db.execute_sql("INSERT INTO mine VALUES (1)")
    assert postgres_db.execute_query("SELECT x FROM mine") == [["1"]]

def test_table_is_gone_in_the_next_test(postgres_db, postgres):
    assert postgres_db.execute_query("SELECT count(*) FROM pg_tables WHERE tablename = 'mine'") == [["0"]]
    assert postgres_db.execute_query("SELECT count(*) FROM base") == [["0"]]  # from the template
    out = os.environ["CLEANROOM_TEST_OUT"]
    with open(os.path.join(out, __name__ + ".id"), "w") as f:
        f.write(postgres.service.id + " " + postgres_db.name)

def test_redis_is_clean(redis_client):
    assert redis_client.dbsize() == 0
    redis_client.set("k", "v")
'''


def write_suite(tmp_path):
    tmp_path.mkdir(parents=True)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name in ("test_mod_a.py", "test_mod_b.py"):
        (tmp_path / name).write_text(MODULE)
    return tmp_path


def run_pytest(tmp_path, *args, out_dir):
    env = {**__import__("os").environ, "CLEANROOM_TEST_OUT": str(out_dir)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def test_modules_see_fresh_databases_and_xdist_shares_one_postgres(tmp_path, podman_api):
    suite = write_suite(tmp_path / "suite")
    out = tmp_path / "out"
    out.mkdir()
    # Start from no PostgreSQL singleton, so "created" is this run's doing.
    for c in containers_with_label(podman_api, "io.cleanroom.singleton=postgres"):
        podman_api.delete(f"/containers/{c['Id']}", params={"force": True, "timeout": 0})
    report = tmp_path / "report.json"
    r = run_pytest(suite, "-n", "2", "--cleanroom-report", str(report), out_dir=out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 passed" in r.stdout
    ids = [p.read_text().split() for p in out.glob("*.id")]
    assert len(ids) == 2
    assert ids[0][0] == ids[1][0]  # one PostgreSQL container for both workers
    assert ids[0][1] != ids[1][1]  # each test its own database
    assert len(containers_with_label(podman_api, "io.cleanroom.singleton=postgres")) == 1
    data = json.loads(report.read_text())
    assert data["totals"]["passed"] == 6 and data["totals"]["failed"] == 0
    assert all("duration" in t and t["outcome"] == "passed" for t in data["tests"])
    # Each worker's environment section reached the controller: one made PostgreSQL, the other reused it.
    pg = [s for s in data["environment"]["services"] if s["name"] == "cleanroom-singleton-postgres"]
    assert len(pg) == 2 and len(data["environment"]["id"].split(", ")) == 2
    assert data["totals"]["audit_verified"] is True


def test_report_carries_sandbox_usage_redactions_and_output_digest(tmp_path):
    (tmp_path / "test_job.py").write_text(textwrap.dedent('''
        import random
        def test_job(sandbox):
            r = sandbox("localhost/cleanroom/busybox:latest",
                        ["/bin/sh", "-c", "echo seed=$CLEANROOM_SEED; echo password=hunter2-xyz"])
            assert "hunter2-xyz" not in r.stdout
            print(random.random())

        def test_failing_job_shows_redacted_output(sandbox):
            # Built at run time so that pytest's echo of this source line shows no secret.
            sandbox("localhost/cleanroom/busybox:latest", ["/bin/sh", "-c", "echo token=$S; exit 3"],
                    env={"S": "abc" + "123-secret"})
            assert False, "fails on purpose"
    '''))
    (tmp_path / "policy.toml").write_text("[cleanroom]\nenable_deterministic_execution = true\ndeterministic_seed = 7\n")
    digests = []
    for i in range(2):
        report = tmp_path / f"r{i}.json"
        r = run_pytest(tmp_path, "--cleanroom-policy", str(tmp_path / "policy.toml"), "--cleanroom-report",
                       str(report), out_dir=tmp_path)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "cleanroom sandbox 0" in r.stdout and "token=[REDACTED:assignment]" in r.stdout
        assert "abc123-secret" not in r.stdout
        tests = {t["nodeid"].split("::")[-1]: t for t in json.loads(report.read_text())["tests"]}
        job = tests["test_job"]
        assert job["outcome"] == "passed" and job["redactions"] == {"assignment": 1}
        assert job["sandboxes"][0]["peak_memory_bytes"] > 0 and job["sandboxes"][0]["cpu_seconds"] >= 0
        assert tests["test_failing_job_shows_redacted_output"]["outcome"] == "failed"
        digests.append(job["output_sha256"])
    # Deterministic execution: the same suite twice gives identical redacted output.
    assert digests[0] == digests[1]


def test_marker_runs_a_tests_sandboxes_under_its_own_policy(tmp_path):
    (tmp_path / "strict.toml").write_text('[cleanroom.security_policy]\nsecurity_level = "Maximum"\n')
    (tmp_path / "loose.toml").write_text('[cleanroom.security_policy]\nsecurity_level = "Minimal"\n')
    (tmp_path / "test_marker.py").write_text(textwrap.dedent(f'''
        import pytest
        CMD = ["/bin/sh", "-c", "grep CapEff /proc/self/status"]

        def test_session_policy(sandbox):
            assert sandbox("localhost/cleanroom/busybox:latest", CMD).stdout.split()[1] != "0000000000000000"

        @pytest.mark.cleanroom(policy={str(tmp_path / "strict.toml")!r})
        def test_marked_policy(sandbox):
            assert sandbox("localhost/cleanroom/busybox:latest", CMD).stdout.split()[1] == "0000000000000000"
    '''))
    r = run_pytest(tmp_path, "--cleanroom-policy", str(tmp_path / "loose.toml"), out_dir=tmp_path)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr
