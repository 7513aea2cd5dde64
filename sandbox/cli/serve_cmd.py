"""`cleanroom serve`: health and Prometheus metrics for this host's sandboxes.

Binds 127.0.0.1 by default: the numbers describe a test host and are nobody
else's business. /healthz answers 200 while the Podman service answers.
"""

from __future__ import annotations

import json
import sys
import time

import click
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from sandbox.cli.common import EXIT_ENGINE, die
from sandbox.engine.podman.libpod import LibpodAPI
from sandbox.engine.teardown.ownership import LABEL_KIND, LABEL_MANAGED, owner_alive
from sandbox.errors import CleanroomError, EngineUnavailable
from sandbox.observe.http import Endpoint, Response, check_bind, metrics_route


def _collector(url: str | None):
    api = LibpodAPI(url)

    class Collector:
        def collect(self):
            up = GaugeMetricFamily("cleanroom_engine_up", "1 when the Podman API service answers")
            by_kind = GaugeMetricFamily("cleanroom_containers", "cleanroom containers by kind and state",
                                        labels=["kind", "state"])
            orphans = GaugeMetricFamily("cleanroom_orphans", "containers whose owning process is gone")
            try:
                items = api.list_containers(labels=[f"{LABEL_MANAGED}=true"])
                up.add_metric([], 1)
            except Exception:
                items = []
                up.add_metric([], 0)
            counts: dict[tuple[str, str], int] = {}
            dead = 0
            for c in items:
                key = (c.labels.get(LABEL_KIND, "unknown"), c.state or "unknown")
                counts[key] = counts.get(key, 0) + 1
                dead += 0 if owner_alive(c.labels) else 1
            for (kind, state), n in counts.items():
                by_kind.add_metric([kind, state], n)
            orphans.add_metric([], dead)
            yield up
            yield by_kind
            yield orphans

    return api, Collector()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9464, show_default=True, type=int)
@click.option("--allow-remote", is_flag=True, help="Allow a --host beyond loopback (logged).")
@click.option("--url", default=None, help="Podman API URL (default: discovered).")
def serve_command(host: str, port: int, allow_remote: bool, url: str | None) -> None:
    """Serve /healthz and /metrics (Prometheus) for this host's sandboxes."""

    try:
        api, collector = _collector(url)
    except EngineUnavailable as exc:
        die(str(exc), EXIT_ENGINE)
    registry = CollectorRegistry()
    registry.register(collector)
    started = time.time()

    def health() -> Response:
        try:
            ok = api.ping()
        except Exception:
            ok = False
        body = json.dumps({"ok": ok, "engine": api.url, "uptime_seconds": round(time.time() - started, 1)})
        return 200 if ok else 503, "application/json", body.encode()

    try:
        check_bind(host, allow_remote, "cleanroom serve")
        endpoint = Endpoint(host, port, {"/metrics": metrics_route(registry), "/healthz": health})
    except CleanroomError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"cleanroom serve: http://{endpoint.address}/metrics and /healthz", err=True)
    sys.stderr.flush()
    try:
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.close()
        api.close()
