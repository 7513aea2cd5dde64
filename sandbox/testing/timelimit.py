"""The pytest plugin's per-test wall clock: resource_limits.max_test_execution_time.

A test that uses the cleanroom environment and runs past the limit fails with
TimeoutExceeded naming the key; the exception unwinds through the sandbox it was
waiting on, which is killed and removed like any other. (test_execution_timeout is
the separate, per-sandbox limit.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from sandbox.errors import TimeoutExceeded


def _limit(item: pytest.Item) -> float | None:
    env = getattr(item.config, "_cleanroom_env", None)
    if env is None or "cleanroom" not in getattr(item, "fixturenames", ()):
        return None  # the test does not run under cleanroom's policy
    if threading.current_thread() is not threading.main_thread():
        return None  # signals reach the main thread only
    return float(env.config.resource_limits.max_test_execution_time)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    limit = _limit(item)
    if limit is None:
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutExceeded(f"test {item.nodeid} (resource_limits.max_test_execution_time)", limit)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
