"""A confinement module that cannot be imported stops cleanroom with an error that names
it and the fix, instead of running sandboxes without limits or network rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["pyroute2", "cgroupspy", "psutil"])
def test_an_unimportable_confinement_dependency_refuses_to_run(module):
    code = (f"import sys; sys.modules[{module!r}] = None\n"  # what a broken install looks like
            "from sandbox import CleanroomEnvironment\n"
            "CleanroomEnvironment().run('img', ['/bin/true'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sandbox.errors.CleanroomError: confinement cannot be applied"), r.stderr
    assert module in last and "fix:" in last and "cleanroom doctor" in last
