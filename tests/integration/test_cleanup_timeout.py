"""resource_limits.resource_cleanup_timeout bounds how long closing an environment may
take: what is not removed by then is named (log and audit) and left to finish in the
background or for `cleanroom prune`; never silently."""

from __future__ import annotations

import json
import time

from loguru import logger
from podman_helpers import BUSYBOX, containers_with_label

from sandbox import CleanroomConfig, CleanroomEnvironment, GenericContainer
from sandbox.engine.teardown.ownership import LABEL_ENV

TOML = "[cleanroom]\nenable_singleton_containers = false\n[cleanroom.resource_limits]\nresource_cleanup_timeout = {}\n"


def _start_three(env) -> None:
    for i in range(3):
        env.get_or_create_container(f"s{i}", lambda: GenericContainer(BUSYBOX, ["/bin/sleep", "60"]))


def test_closing_past_the_timeout_names_what_is_left_and_the_rest_still_goes(tmp_path, podman_url, podman_api):
    lines: list[str] = []
    logger.enable("sandbox")
    sink = logger.add(lambda m: lines.append(str(m)), level="ERROR", format="{message} {extra}")
    try:
        env = CleanroomEnvironment(CleanroomConfig.from_toml(TOML.format(0.01)), url=podman_url, audit_dir=tmp_path)
        with env:
            _start_three(env)
            assert len(containers_with_label(podman_api, f"{LABEL_ENV}={env.id}")) == 3
            t0 = time.monotonic()
        closed_in = time.monotonic() - t0
    finally:
        logger.remove(sink)
        logger.disable("sandbox")
    assert closed_in < 1.0  # three removals take longer than the 0.01 s allowed
    error = [line for line in lines if "resource_cleanup_timeout" in line]
    assert len(error) == 1 and "cleanroom prune" in error[0] and "container cleanroom-service-" in error[0]
    records = [json.loads(x) for x in env.audit_path.read_text().splitlines()]
    late = [r for r in records if r["event"] == "environment.cleanup_timeout"]
    assert len(late) == 1 and late[0]["data"]["left"] and late[0]["data"]["limit_seconds"] == 0.01
    deadline = time.monotonic() + 30  # the removal went on in the background
    while containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []


def test_within_the_timeout_nothing_is_reported(tmp_path, podman_url, podman_api):
    env = CleanroomEnvironment(CleanroomConfig.from_toml(TOML.format(60)), url=podman_url, audit_dir=tmp_path)
    with env:
        _start_three(env)
    records = [json.loads(x)["event"] for x in env.audit_path.read_text().splitlines()]
    assert "environment.cleanup_timeout" not in records and "environment.closed" in records
    assert containers_with_label(podman_api, f"{LABEL_ENV}={env.id}") == []
