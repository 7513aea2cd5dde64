"""Which policy a command or a test session runs under: one fallback chain for all."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.errors import PolicyError
from sandbox.policy.config import CleanroomConfig

DEFAULT_POLICY_FILE = "cleanroom.toml"


def effective_config(policy_file: str | os.PathLike[str] | None = None, overlay: str | None = None) -> CleanroomConfig:
    """The file given, else ./cleanroom.toml, else the built-in default; the overlay
    given, else $CLEANROOM_ENV. An overlay without a file to apply it to is an error."""
    overlay = overlay or os.environ.get("CLEANROOM_ENV") or None
    if policy_file:
        return CleanroomConfig.from_file(policy_file, overlay)
    if Path(DEFAULT_POLICY_FILE).is_file():
        return CleanroomConfig.from_file(DEFAULT_POLICY_FILE, overlay)
    if overlay:
        raise PolicyError(f"overlay {overlay!r} given (--env / CLEANROOM_ENV) but no policy file: "
                          f"pass --policy FILE or add ./{DEFAULT_POLICY_FILE}")
    return CleanroomConfig.default()
