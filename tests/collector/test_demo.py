"""`make demo` in CI: the demo runs by itself for a while and shows the anomalies as they arrive."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker import find_mosquitto, missing_tool

REPO = Path(__file__).resolve().parents[2]


def needs_mosquitto():
    if not find_mosquitto():
        missing_tool("mosquitto is not installed (ci/install-system-packages.sh installs it)")


@pytest.mark.slow
def test_the_demo_prints_the_attack_and_the_killed_agent_then_stops_by_itself():
    needs_mosquitto()
    result = subprocess.run([sys.executable, str(REPO / "demo" / "run_demo.py"), "--duration",
                             "18", "--discard"], capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    database = Path(re.search(r"^  database   (\S+) ", out, re.M).group(1))
    assert not database.parent.exists(), "--discard leaves nothing behind"
    assert "routerwatch demo" in out and "demo: stopped" in out
    for kind in ("login.bruteforce", "login.spray", "login.success_after_failures",
                 "agent.silent"):
        assert kind in out, out
    assert "from 203.0.113.7" in out
    assert "Traceback" not in out + result.stderr


def test_the_demo_stops_cleanly_on_ctrl_c():
    needs_mosquitto()
    import signal
    import time
    process = subprocess.Popen([sys.executable, str(REPO / "demo" / "run_demo.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "the attack starts" in line or not line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert any("the attack starts" in line for line in lines), "".join(lines) + err
    assert process.returncode == 0
    assert "demo: stopped" in out and "Traceback" not in out + err
    # the banner said the database is kept; after Ctrl-C it is there, alone, and can be queried
    banner = "".join(lines)
    match = re.search(r"^  database   (\S+) \(kept when the demo stops; --discard deletes it\)",
                      banner, re.M)
    assert match, banner
    database = Path(match.group(1))
    try:
        assert "demo: the database stays in %s" % database in out
        assert sorted(p.name for p in database.parent.iterdir()) == ["collector.sqlite"]
        query = subprocess.run([sys.executable, "-m", "routerwatch_collector.cli", "devices",
                                "--db", str(database)], capture_output=True, text=True, timeout=60)
        assert query.returncode == 0 and "rw-demo-router" in query.stdout, query.stderr
    finally:
        shutil.rmtree(database.parent, ignore_errors=True)
