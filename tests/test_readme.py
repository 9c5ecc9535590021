"""The README's two set-up commands are what CI runs; keep them and .ci/run in step."""

from __future__ import annotations

import re
import subprocess

from conftest import PROJECT_ROOT

SETUP = re.compile(r"^    \$ (.+)$", re.MULTILINE)


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    commands = SETUP.findall((PROJECT_ROOT / "README.md").read_text())
    assert len(commands) >= 2
    install_and_run, install_and_test = commands[:2]
    assert install_and_run.startswith("pip install -e . && python train.py")
    assert install_and_test.startswith('pip install -e ".[test')
    assert "pytest" in install_and_test


def test_ci_script_extracts_the_readme_test_command() -> None:
    script = (PROJECT_ROOT / ".ci" / "run").read_text()
    match = re.search(r"cmd=\$\(sed -n '(.+?)' README.md", script)
    assert match, "the .ci/run extraction line changed"
    extracted = subprocess.run(
        ["sed", "-n", match.group(1), str(PROJECT_ROOT / "README.md")],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    commands = SETUP.findall((PROJECT_ROOT / "README.md").read_text())
    assert extracted[:1] == [commands[1]]
