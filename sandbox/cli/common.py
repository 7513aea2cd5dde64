"""Pieces every command shares: policy options, exit codes, error printing."""

from __future__ import annotations

import functools
import sys
from typing import NoReturn

import click

from sandbox.errors import PolicyError
from sandbox.policy.resolve import effective_config

# Exit codes follow podman's: 125 the engine failed, 126/127 the command could not
# run; 124 is the conventional timeout code; 2 is a usage/policy error.
EXIT_POLICY = 2
EXIT_TIMEOUT = 124
EXIT_ENGINE = 125


def die(message: str, code: int) -> NoReturn:
    click.echo(f"cleanroom: error: {message}", err=True)
    sys.exit(code)


def policy_options(fn):
    @click.option("--policy", "policy", type=click.Path(dir_okay=False), default=None,
                  help="Policy file (default: ./cleanroom.toml if present, else the built-in default).")
    @click.option("--env", "env", default=None,
                  help="Environment overlay to apply ([cleanroom.<env>]); default $CLEANROOM_ENV.")
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def load_config(policy: str | None, env: str | None):
    """The effective policy, or exit 2 with the PolicyError's message."""
    try:
        return effective_config(policy, env)
    except PolicyError as exc:
        # Every error of the file, one per line, so one edit round fixes them all.
        die("\ncleanroom: error: ".join(str(e) for e in exc.errors), EXIT_POLICY)
