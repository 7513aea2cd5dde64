"""Adopting a running singleton through the fake API: one inspect by name, no network
calls until the environment's network is needed, then the singleton joins it."""

from __future__ import annotations

from fake_podman import FakePodman
from test_engine_runner import ENV_ID, make, pending_cleanups

from sandbox.engine.launcher import ServiceLauncher, ServiceSpec
from sandbox.engine.networks import EnvironmentNetwork
from sandbox.errors import ContainerNotFound

NETWORK_CALLS = ("network_create", "network_connect", "network_disconnect", "network_remove")


def _launcher(runner, fake: FakePodman) -> tuple[ServiceLauncher, EnvironmentNetwork]:
    net = EnvironmentNetwork(fake, ENV_ID, {})
    return ServiceLauncher(runner, net, runner.redactor.add_secret), net


def _singleton(runner, fake):
    first, _ = _launcher(runner, fake)
    return first.start_singleton(ServiceSpec(image="img"), name="pg", container_name="cleanroom-singleton-pg",
                                 digest="d1")


def test_a_singleton_is_found_by_its_name_with_one_inspect():
    runner, fake, log, _, _ = make()
    made = _singleton(runner, fake)
    launcher, _ = _launcher(runner, fake)
    calls: list[str] = []
    for method in ("inspect_container", "list_containers"):
        real = getattr(fake, method)
        setattr(fake, method, lambda *a, _m=method, _real=real, **k: calls.append(_m) or _real(*a, **k))
    info = launcher.find_singleton("pg", "cleanroom-singleton-pg")
    assert info is not None and info.id == made.id
    assert calls == ["inspect_container"]


def test_a_container_of_that_name_without_the_label_is_not_taken_for_the_singleton():
    runner, fake, log, _, _ = make()
    made = _singleton(runner, fake)
    launcher, _ = _launcher(runner, fake)
    assert launcher.find_singleton("other", "cleanroom-singleton-pg") is None  # its label names "pg"
    assert launcher.find_singleton("pg", "cleanroom-singleton-gone").id == made.id  # the label search still works


def test_adoption_touches_no_network_until_a_sandbox_needs_it():
    runner, fake, log, _, _ = make()
    made = _singleton(runner, fake)
    launcher, net = _launcher(runner, fake)
    del log[:]
    launcher.adopt(launcher.find_singleton("pg", "cleanroom-singleton-pg"), alias="pg")
    assert not [c for c in log if c in NETWORK_CALLS]
    net.remove(keep=[made.id])  # closing an environment that never needed its network
    assert not [c for c in log if c in NETWORK_CALLS]
    assert net.ensure() == f"cleanroom-{ENV_ID}"  # the first sandbox on the network: made, then joined
    assert [c for c in log if c in NETWORK_CALLS] == ["network_create", "network_connect"]
    net.connect("another", ["x"])  # once it exists, a later adoption joins at once
    assert [c for c in log if c in NETWORK_CALLS][-1] == "network_connect"
    pending_cleanups()


def test_a_singleton_gone_before_the_network_was_needed_does_not_stop_the_sandbox():
    runner, fake, log, _, _ = make()
    _, net = _launcher(runner, fake)
    net.connect("gone", ["pg"])
    fake.fail["network_connect"] = ContainerNotFound("no container gone")
    assert net.ensure() == f"cleanroom-{ENV_ID}"
