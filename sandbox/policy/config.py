"""CleanroomConfig: the effective policy, and the ways to make one."""

from __future__ import annotations

import os

from sandbox.policy.loader import load_policy, load_policy_text
from sandbox.policy.model import PolicyConfig


class CleanroomConfig(PolicyConfig):
    """The effective policy: the ``[cleanroom]`` table with at most one overlay applied
    (``[cleanroom.dev]``, ``[cleanroom.prod]`` …; default ``$CLEANROOM_ENV``)."""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], overlay: str | None = None) -> CleanroomConfig:
        return load_policy(path, overlay, into=cls)

    @classmethod
    def from_toml(cls, text: str, *, file: str = "<string>", overlay: str | None = None) -> CleanroomConfig:
        return load_policy_text(text, file=file, overlay=overlay, into=cls)

    @classmethod
    def default(cls) -> CleanroomConfig:
        """The shipped default policy without reading a file.

        policies/default.toml spells out exactly these values (a unit test holds the
        two to the same digest), so the field defaults are the default policy.
        """
        return cls()
