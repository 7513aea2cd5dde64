"""The cleanup registry undoes everything still registered, newest first, despite failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from sandbox.engine.teardown import cleanup


def test_run_all_undoes_newest_first_and_survives_failures():
    order = []
    cleanup.register("a", lambda: order.append("a"))

    def boom():
        raise RuntimeError("nope")

    cleanup.register("b", boom)
    t = cleanup.register("c", lambda: order.append("c"))
    cleanup.register("d", lambda: order.append("d"))
    cleanup.done(t)
    undone = cleanup.run_all()
    assert order == ["d", "a"]
    assert undone == ["d", "a"]
    assert cleanup.run_all() == []


def test_run_all_for_one_owner_leaves_the_others():
    order = []
    cleanup.register("mine", lambda: order.append("mine"), owner="env-a")
    cleanup.register("theirs", lambda: order.append("theirs"), owner="env-b")
    assert cleanup.run_all(owner="env-a") == ["mine"]
    assert order == ["mine"]
    assert cleanup.run_all() == ["theirs"]


def test_sigterm_runs_cleanup_in_a_real_process(tmp_path):
    marker = tmp_path / "undone"
    code = textwrap.dedent(f"""
        import os, signal, time, sys
        from sandbox.engine.teardown import cleanup
        cleanup.register("marker", lambda: open({str(marker)!r}, "w").write("yes"))
        print("ready", flush=True)
        time.sleep(30)
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert marker.read_text() == "yes"
    assert proc.returncode == 128 + signal.SIGTERM
