"""The frozen clock of deterministic execution (policy key ``deterministic_clock``).

Debian's libfaketime, mounted read-only from the host into the sandbox and preloaded
(LD_PRELOAD), answers every wall-clock call of a dynamically linked program with the
policy's instant; monotonic clocks stay real so timeouts and sleeps still work. A
statically linked program (busybox) ignores LD_PRELOAD and sees the real clock: the
frozen clock is for the dynamically linked programs of an image such as a Debian one.

The instant goes in as seconds since the epoch (FAKETIME_FMT=%s), so the sandbox's
TZ cannot shift it.
"""

from __future__ import annotations

import os
import sysconfig
from datetime import datetime
from typing import Any

from sandbox.errors import PolicyError

# Where the library appears inside the sandbox: a path no image ships.
SANDBOX_PATH = "/usr/local/lib/cleanroom/libfaketime.so.1"


def host_library() -> str:
    """The host's libfaketime, or a PolicyError naming the key and the package to install."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    candidates = [f"/usr/lib/{multiarch}/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                  "/usr/local/lib/faketime/libfaketime.so.1"]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise PolicyError(f"a frozen clock needs libfaketime on this host; none at {', '.join(candidates)}",
                      key="cleanroom.deterministic_clock",
                      allowed="install it (Debian: apt-get install libfaketime; scripts/setup-host.sh does) "
                              "or remove the key")


def epoch_seconds(instant: str) -> int:
    """``2026-01-01T00:00:00Z`` (or with an offset) as seconds since the epoch."""
    return int(datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp())


def frozen_clock(instant: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(the read-only bind mount, the environment) that freeze a sandbox's wall clock at ``instant``."""
    mount = {"destination": SANDBOX_PATH, "type": "bind", "source": host_library(),
             "options": ["ro", "nosuid", "nodev", "rbind"]}
    env = {"LD_PRELOAD": SANDBOX_PATH, "FAKETIME": str(epoch_seconds(instant)), "FAKETIME_FMT": "%s",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return mount, env
