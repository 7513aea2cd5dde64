"""Ownership labels identify a live process by PID and start time, not PID alone."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.engine.teardown import ownership


def test_labels_of_this_process_are_alive():
    labels = ownership.owner_labels("env-1", "sandbox", "x")
    assert labels[ownership.LABEL_OWNER_PID] == str(os.getpid())
    assert labels[ownership.LABEL_ENV] == "env-1"
    assert ownership.owner_alive(labels)


def test_dead_process_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    labels = ownership.owner_labels("env-1", "sandbox")
    labels[ownership.LABEL_OWNER_PID] = str(proc.pid)
    assert not ownership.owner_alive(labels)


def test_reused_pid_with_other_start_time_is_not_alive():
    labels = ownership.owner_labels("env-1", "sandbox")
    labels[ownership.LABEL_OWNER_START] = "12345.00"
    assert not ownership.owner_alive(labels)


def test_garbage_labels_are_orphans():
    assert not ownership.owner_alive({ownership.LABEL_OWNER_PID: "not-a-pid"})
