"""`cleanroom` command line: the main job is `cleanroom run IMAGE -- CMD...`."""

from __future__ import annotations

import os
import sys

import click
from loguru import logger

from sandbox.cli.audit_cmd import audit_group
from sandbox.cli.common import EXIT_ENGINE, EXIT_POLICY, die, load_config, policy_options
from sandbox.cli.doctor_cmd import doctor_main
from sandbox.cli.images_cmd import build_main, build_user_main, containerfile_in, pull_main
from sandbox.cli.policy_cmd import policy_group
from sandbox.cli.prune_cmd import prune_main
from sandbox.cli.report_cmd import report_group
from sandbox.cli.run_cmd import RunOptions, run_main
from sandbox.cli.serve_cmd import serve_command
from sandbox.cli.test_cmd import test_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cleanroom")
def cli() -> None:
    """Hermetic, policy-governed test sandboxes on rootless Podman."""


@cli.command(context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False})
@policy_options
@click.option("--env-var", "env_vars", multiple=True, metavar="K=V", help="Set a variable inside the sandbox.")
@click.option("--secret", "secrets", multiple=True, metavar="NAME",
              help="Pass host variable NAME into the sandbox and mask its value everywhere.")
@click.option("--timeout", type=float, default=None, help="Seconds before the sandbox is killed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a summary.")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="SRC:DST[:ro|rw]",
              help="Bind-mount a host path (read-only unless :rw and the policy allows writable mounts).")
@click.option("-w", "--workdir", default=None, metavar="DIR", help="Working directory of the command.")
@click.option("-u", "--user", default=None, metavar="USER", help="User (name or uid[:gid]) the command runs as.")
@click.option("-i", "--interactive", is_flag=True, help="Feed this process's stdin to the command, then EOF.")
@click.option("--monitor", is_flag=True, help="Sample usage and alert on the policy's thresholds (enable_monitoring).")
@click.option("--alert-webhook", "alert_webhooks", multiple=True, metavar="URL",
              help="With monitoring: POST each alert to URL as JSON (start_alerting).")
@click.option("--trace", is_flag=True, help="OpenTelemetry spans of the run (enable_tracing): OTLP or a file.")
@click.argument("image")
@click.argument("command", nargs=-1, required=True)
def run(policy, env, env_vars, secrets, timeout, as_json, volumes, workdir, user, interactive, monitor, alert_webhooks,
        trace, image, command) -> None:
    """Run COMMAND in a confined sandbox of IMAGE; exit with its code.

    Example: cleanroom run --policy policies/strict.toml IMAGE -- /bin/sh -c 'echo hi'
    """

    command = list(command)
    if command and command[0] == "--":  # options end at IMAGE, so click keeps the separator
        command = command[1:]
    if not command:
        raise click.UsageError("missing COMMAND after IMAGE --")
    sys.exit(run_main(policy, env, env_vars, secrets, timeout, as_json, image, command,
                      RunOptions(volumes=list(volumes), workdir=workdir, user=user, interactive=interactive,
                                 monitor=monitor or bool(alert_webhooks), alert_webhooks=list(alert_webhooks),
                                 trace=trace)))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--url", default=None, help="Podman API URL (default: discovered).")
def doctor(as_json: bool, url: str | None) -> None:
    """What this host supports, and how to fix what it lacks."""

    sys.exit(doctor_main(as_json, url))


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--url", default=None, help="Podman API URL (default: discovered).")
@click.option("--all", "remove_all", is_flag=True, help="Also remove sandboxes whose owner still runs.")
def prune(as_json: bool, url: str | None, remove_all: bool) -> None:
    """Remove what crashed runs left: sandboxes, cgroups, networks."""

    sys.exit(prune_main(as_json, url, remove_all))


@cli.group()
def images() -> None:
    """Build your images, pull them (policy: allowed_registries), or build cleanroom's own."""


@images.command("build")
@policy_options
@click.option("-t", "--tag", default=None, help="Build your own image with this tag from CONTEXT.")
@click.option("-f", "--file", "containerfile", default=None, help="Containerfile (default: CONTEXT/Containerfile).")
@click.option("--force", is_flag=True, help="Rebuild cleanroom's images that already exist.")
@click.argument("names", nargs=-1)
def images_build(policy, env, tag, containerfile, force: bool, names: tuple[str, ...]) -> None:
    """Build an image: `-t TAG [-f FILE] CONTEXT` through the engine (output streamed, redacted,
    the image id last), or cleanroom's own (busybox, services, python) without -t."""

    if tag is None:
        sys.exit(build_main(force, list(names)))
    if len(names) > 1:
        raise click.UsageError("one CONTEXT directory")
    context = names[0] if names else "."
    sys.exit(build_user_main(policy, env, context, tag, containerfile_in(context, containerfile)))


@images.command("pull")
@policy_options
@click.option("--tls-verify/--no-tls-verify", default=True, help="Verify the registry's TLS certificate.")
@click.argument("reference")
def images_pull(policy, env, tls_verify: bool, reference: str) -> None:
    """Pull REFERENCE (registry named in full; allowed_registries decides) with a progress bar."""

    sys.exit(pull_main(policy, env, reference, tls_verify))


for _command in (policy_group, audit_group, report_group, test_command, serve_command):
    cli.add_command(_command)


def main() -> None:
    # The library is silent by default; the command shows warnings and errors, and
    # CLEANROOM_LOG_LEVEL=DEBUG shows everything (redacted, like all output).
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("CLEANROOM_LOG_LEVEL", "WARNING"),
               format="<level>{level: <8}</level> {message} {extra}")
    logger.enable("sandbox")
    cli(prog_name="cleanroom")


__all__ = ["cli", "main", "EXIT_ENGINE", "EXIT_POLICY", "die", "load_config"]
