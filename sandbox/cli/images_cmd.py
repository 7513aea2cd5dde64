"""`cleanroom images build|pull`: a user's images through the engine, progress shown.

`images build NAME…` (no -t) still builds cleanroom's own local images with
scripts/build-images.sh (mmdebstrap + podman import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from sandbox.cli.common import EXIT_ENGINE, EXIT_POLICY, die, load_config
from sandbox.engine.images import PullProgress, for_images
from sandbox.environment import CleanroomEnvironment
from sandbox.errors import CleanroomError, EngineUnavailable, PolicyError

KNOWN = ("busybox", "services", "python")


def _script() -> Path:
    here = Path(__file__).resolve().parents[2] / "scripts" / "build-images.sh"
    if not here.is_file():
        die(f"{here} not found: `cleanroom images build` needs a source checkout of cleanroom", EXIT_ENGINE)
    return here


def build_main(force: bool, names: list[str]) -> int:
    for name in names:
        if name not in KNOWN:
            die(f"unknown image {name!r} (known: {', '.join(KNOWN)}; to build your own: -t TAG [-f FILE] CONTEXT)", 2)
    env = dict(os.environ)
    if force:
        env["FORCE"] = "1"
    return subprocess.call(["bash", str(_script()), *names], env=env)


def _fmt(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def progress_bar(stream=sys.stderr, width: int = 30):
    """A one-line bar (bytes and layers) redrawn in place; a plain line per change when
    the stream is not a terminal."""
    tty = stream.isatty()
    last = [""]

    def show(p: PullProgress) -> None:
        frac = p.bytes_done / p.bytes_total if p.bytes_total else (p.layers_done / p.layers if p.layers else 0.0)
        filled = int(width * min(1.0, frac))
        size = f"{_fmt(p.bytes_done)}/{_fmt(p.bytes_total)}" if p.bytes_total else "size n/a"
        line = f"pulling {p.reference} [{'#' * filled}{'.' * (width - filled)}] {size} · " \
               f"layers {p.layers_done}/{p.layers}"
        if line == last[0]:
            return
        last[0] = line
        stream.write(("\r" + line) if tty else line + "\n")
        stream.flush()

    def done() -> None:
        if tty and last[0]:
            stream.write("\n")  # what follows starts on a line of its own
            stream.flush()
        last[0] = ""

    return show, done


def containerfile_in(context: str, containerfile: str | None) -> str:
    """-f as a path inside the context (the engine reads it from the context's tar)."""
    if containerfile is None:
        return "Containerfile"
    path = Path(containerfile)
    if path.exists():
        rel = os.path.relpath(path.resolve(), Path(context).resolve())
        if rel.startswith(".."):
            die(f"-f {containerfile}: the Containerfile must be inside the context {context}", EXIT_POLICY)
        return rel
    return containerfile


def _environment(policy, env):
    return CleanroomEnvironment(for_images(load_config(policy, env)), confine=False)


def pull_main(policy, env, reference: str, tls_verify: bool) -> int:
    show, done = progress_bar()
    try:
        with _environment(policy, env) as e:
            image = e.images.pull(reference, progress=show, tls_verify=tls_verify)
    except PolicyError as exc:
        done()
        die(str(exc), EXIT_POLICY)
    except (EngineUnavailable, CleanroomError) as exc:
        done()
        die(str(exc), EXIT_ENGINE)
    done()
    click.echo(f"cleanroom: pulled {reference} · image {image.id} · digest {image.digest or 'n/a'}", err=True)
    click.echo(image.id)
    return 0


def build_user_main(policy, env, context: str, tag: str, containerfile: str) -> int:
    def out(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    try:
        with _environment(policy, env) as e:
            image = e.images.build(context, tag=tag, containerfile=containerfile, on_output=out)
    except PolicyError as exc:
        die(str(exc), EXIT_POLICY)
    except CleanroomError as exc:
        die(str(exc), EXIT_ENGINE)
    click.echo(f"cleanroom: built {tag} · image {image.id}", err=True)
    click.echo(image.id)
    return 0
