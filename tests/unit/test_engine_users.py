"""Non-root users under cgroup confinement, without Podman: when the helper wraps a
request, with which user, entrypoint and command."""

from __future__ import annotations

import pytest
from fake_podman import FakePodman

from sandbox.engine.helper.build import HELPER_TARGET
from sandbox.engine.helper.users import as_user, is_root, keep_switch_caps
from sandbox.engine.podman.api import ImageConfig
from sandbox.engine.types import CreateRequest
from sandbox.policy import CleanroomConfig


@pytest.mark.parametrize("user,root", [(None, True), ("", True), ("0", True), ("root:root", True), ("0:5", True),
                                       ("1000", False), ("nobody", False), ("1000:1000", False)])
def test_is_root(user, root):
    assert is_root(user) is root


def _fake(user: str) -> FakePodman:
    fake = FakePodman()
    fake.images["img"] = ImageConfig(user=user, entrypoint=["/entry"], cmd=["serve", "--x"])
    return fake


def test_a_root_image_is_left_alone():
    request = CreateRequest(image="img", name="n", command=["true"])
    assert as_user(_fake(""), request, keep_caps=False) is request


def test_a_non_root_image_starts_as_root_and_drops_through_the_helper():
    out = as_user(_fake("1000"), CreateRequest(image="img", name="n"), keep_caps=False)
    assert out.user == "0"
    assert out.entrypoint == [HELPER_TARGET, "-u", "1000", "--"]
    assert out.command == ["/entry", "serve", "--x"]  # the image's own entrypoint and command
    assert [m.target for m in out.system_mounts] == [HELPER_TARGET] and out.system_mounts[0].read_only
    assert out.extra_caps == ["SETUID", "SETGID"]


def test_an_asked_for_user_wins_and_a_given_command_replaces_the_images():
    out = as_user(_fake(""), CreateRequest(image="img", name="n", command=["id"], user="nobody"), keep_caps=True)
    assert out.entrypoint == [HELPER_TARGET, "-u", "nobody", "-k", "--"] and out.command == ["/entry", "id"]


def test_the_helper_keeps_switching_caps_only_when_the_policy_grants_them():
    strict = CleanroomConfig.from_toml('[cleanroom.security_policy]\nsecurity_level = "Maximum"\n')
    granted = CleanroomConfig.from_toml('[cleanroom.security_policy]\nsecurity_level = "Maximum"\n'
                                        'allowed_capabilities = ["SETUID", "CAP_SETGID"]\n')
    assert keep_switch_caps(strict) is False
    assert keep_switch_caps(granted) is True
