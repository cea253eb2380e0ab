"""The README's "Running the agent" examples run as written, from the repository root, with the
commands the venv installs (.venv/bin/routerwatch-agent) on a machine that is not a router: no
traceback, the exit codes the README gives. The one that starts a long-running agent against
broker.example is left out (it would keep its state in this machine's /etc/routerwatch)."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def agent_examples():
    section = README.split("## Running the agent", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [line.split("   #")[0].split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line.startswith("routerwatch-agent")]


def command(name):
    beside = Path(sys.executable).parent / name
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "routerwatch.cli"]


def test_the_examples_are_found():
    examples = agent_examples()
    assert "routerwatch-agent --once" in examples
    assert "routerwatch-agent --root tests/fixtures/router-attacked --once" in examples
    assert len(examples) >= 5


@pytest.mark.parametrize("example", [e for e in agent_examples() if "mqtt.host" not in e])
def test_a_readme_example_runs_as_written(example):
    argv = command("routerwatch-agent") + shlex.split(example)[1:]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    allowed = (0, 1) if "--once" in example else (0,)    # 1: --once found something serious
    assert result.returncode in allowed, (example, result.returncode, result.stderr)
    if "--once" in example:
        # a clean machine may have nothing to report: the JSON lines and the summary agree
        lines = result.stdout.splitlines()
        assert all(line.startswith("{") and line.endswith("}") for line in lines), lines[:3]
        summary = re.search(r"one scan: (\d+) anomal", result.stderr)
        assert summary, result.stderr
        assert int(summary.group(1)) == len(lines)
    else:
        assert result.stdout.strip(), "prints something"
    if "router-attacked" in example:        # the tree's own log is read, not nothing
        assert '"kind":"login.bruteforce"' in result.stdout
