"""The CI examples in examples/ci parse, shard the way they say, and call only commands
that exist: cleanroom subcommands and their options, make targets, scripts in the repo."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from sandbox.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "examples" / "ci"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def _github_lines(doc: dict) -> list[str]:
    return [line for job in doc["jobs"].values() for step in job["steps"] if "run" in step
            for line in step["run"].splitlines()]


def _gitlab_lines(doc: dict) -> list[str]:
    return [line for name, job in doc.items() if isinstance(job, dict) and "script" in job
            for key in ("before_script", "script", "after_script") for line in job.get(key, [])]


def _check_cleanroom(tokens: list[str]) -> str:
    """Walk the tokens after `cleanroom` down the click tree; every option must exist. Returns the command path."""
    cmd: click.Command = cli
    path = []
    rest = list(tokens)
    while isinstance(cmd, click.Group):
        assert rest and rest[0] in cmd.commands, f"cleanroom {' '.join(path)}: no subcommand {rest[:1]}"
        path.append(rest.pop(0))
        cmd = cmd.commands[path[-1]]
    known = {o for p in cmd.params for o in getattr(p, "opts", [])}
    for tok in rest:
        if tok.startswith("-"):
            assert tok.split("=", 1)[0] in known, f"cleanroom {' '.join(path)}: no option {tok}"
    return " ".join(path)


def _check_lines(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Each line's cleanroom/make/script calls, checked; returns the cleanroom calls with their tokens."""
    calls = []
    targets = _make_targets()
    for line in lines:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        for i, tok in enumerate(tokens):
            if tok == "make":
                assert tokens[i + 1] in targets, f"no make target {tokens[i + 1]!r}: {line}"
            if tok.startswith("scripts/"):
                assert (REPO / tok).is_file(), f"no script {tok}: {line}"
            if tok == "cleanroom" and i + 1 < len(tokens):
                calls.append((_check_cleanroom(tokens[i + 1:]), tokens[i + 1:]))
    return calls


def test_github_workflow_shards_over_its_matrix_and_merges():
    doc = yaml.safe_load((CI / "github-actions.yml").read_text())
    calls = _check_lines(_github_lines(doc))
    assert [c for c, _ in calls] == ["test", "report merge"]
    shards = doc["jobs"]["test"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and doc["env"]["SHARDS"] == len(shards)
    test_args = calls[0][1]
    assert test_args[test_args.index("--shard") + 1] == "$SHARD/$SHARDS"
    assert doc["jobs"]["test"]["env"]["SHARD"] == "${{ matrix.shard }}"
    merge = doc["jobs"]["merge"]
    assert merge["needs"] == "test" and merge["if"] == "always()"
    assert any("make" in line.split() for line in _github_lines({"jobs": {"t": doc["jobs"]["test"]}}))


def test_gitlab_ci_shards_with_parallel_and_merges():
    doc = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    calls = _check_lines(_gitlab_lines(doc))
    assert [c for c, _ in calls] == ["test", "report merge"]
    job = doc["cleanroom-tests"]
    assert job["parallel"] == 3 and job["stage"] in doc["stages"]
    test_args = calls[0][1]
    assert test_args[test_args.index("--shard") + 1] == "$CI_NODE_INDEX/$CI_NODE_TOTAL"
    report = doc["cleanroom-report"]
    assert report["needs"] == ["cleanroom-tests"] and report["when"] == "always"
    assert doc["stages"].index(report["stage"]) > doc["stages"].index(job["stage"])


def test_the_checker_would_catch_a_wrong_command():
    for bad in ("cleanroom test --shards 1/3", "cleanroom report combine a.json", "make tests"):
        try:
            _check_lines([bad])
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {bad}")
