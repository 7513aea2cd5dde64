"""Connection resolution: the order of candidates and an error that says how to fix it."""

from __future__ import annotations

import socket

import pytest

from sandbox.engine.podman import connection
from sandbox.errors import EngineUnavailable


def test_candidates_in_documented_order(monkeypatch, tmp_path):
    recorded = tmp_path / "podman-socket"
    recorded.write_text("unix:///srv/recorded.sock\n")
    monkeypatch.setattr(connection, "SETUP_SOCKET_FILE", recorded)
    monkeypatch.setenv("CONTAINER_HOST", "unix:///env/host.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    urls = [u for u, _ in connection.candidate_urls("/explicit.sock")]
    assert urls == [
        "unix:///explicit.sock",
        "unix:///env/host.sock",
        "unix:///run/user/4242/podman/podman.sock",
        "unix:///srv/recorded.sock",
    ]


def test_duplicates_are_tried_once(monkeypatch, tmp_path):
    monkeypatch.setattr(connection, "SETUP_SOCKET_FILE", tmp_path / "missing")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    monkeypatch.setenv("CONTAINER_HOST", "unix:///run/user/7/podman/podman.sock")
    urls = [u for u, _ in connection.candidate_urls()]
    assert urls == ["unix:///run/user/7/podman/podman.sock"]


def test_nothing_answers_names_every_socket_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(connection, "SETUP_SOCKET_FILE", tmp_path / "missing")
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "rt"))
    with pytest.raises(EngineUnavailable) as info:
        connection.resolve_url(str(tmp_path / "nope.sock"))
    text = str(info.value)
    assert str(tmp_path / "nope.sock") in text
    assert str(tmp_path / "rt" / "podman" / "podman.sock") in text
    assert "does not exist" in text
    assert "podman system service" in text  # the fix
    assert len(info.value.tried) == 2


def test_a_socket_that_is_not_podman_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(connection, "SETUP_SOCKET_FILE", tmp_path / "missing")
    monkeypatch.delenv("CONTAINER_HOST", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "rt"))
    path = tmp_path / "mute.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    try:
        # Accepts then closes without HTTP: the probe must fail, not hang.
        import threading

        def close_all():
            for _ in range(4):
                try:
                    c, _ = srv.accept()
                    c.close()
                except OSError:
                    return

        t = threading.Thread(target=close_all, daemon=True)
        t.start()
        with pytest.raises(EngineUnavailable) as info:
            connection.resolve_url(str(path))
        assert str(path) in str(info.value)
    finally:
        srv.close()
