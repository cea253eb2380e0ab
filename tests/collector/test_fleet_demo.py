"""`make fleet-demo`: PostgreSQL, three collectors and simulated routers come up, the fleet view
shows every router, the one that went quiet as silent, and the metrics answer; then it stops."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker import find_mosquitto
from pgserver import find_postgres_bin

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_fleet_demo_shows_the_routers_the_silent_one_and_the_metrics():
    if not (find_mosquitto() and find_postgres_bin()):
        message = "needs mosquitto and PostgreSQL (ci/install-system-packages.sh installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([sys.executable, str(REPO / "demo" / "fleet_demo.py"),
                             "--routers", "40", "--anomalies", "400"],
                            capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "... 40 devices: online 39, silent 1" in out, out
    assert "agent.silent" in out and 'routerwatch_collector_devices{state="silent"} 1.0' in out
    assert "fleet demo: stopped" in out and "Traceback" not in out + result.stderr
