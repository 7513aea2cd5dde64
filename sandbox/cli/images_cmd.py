"""`cleanroom images build`: wraps scripts/build-images.sh (mmdebstrap + podman import)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sandbox.cli.common import EXIT_ENGINE, die

KNOWN = ("busybox", "services", "python")


def _script() -> Path:
    here = Path(__file__).resolve().parents[2] / "scripts" / "build-images.sh"
    if not here.is_file():
        die(f"{here} not found: `cleanroom images build` needs a source checkout of cleanroom", EXIT_ENGINE)
    return here


def build_main(force: bool, names: list[str]) -> int:
    for name in names:
        if name not in KNOWN:
            die(f"unknown image {name!r} (known: {', '.join(KNOWN)})", 2)
    env = dict(os.environ)
    if force:
        env["FORCE"] = "1"
    return subprocess.call(["bash", str(_script()), *names], env=env)
