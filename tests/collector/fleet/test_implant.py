"""fleet.implant: given anomalies naming a program by sha256, when two devices report the same
one, then one critical fleet anomaly, updated as more devices report it. Integrity file findings
count when their file is code, as the agent reports it (class, ELF, mode "100755")."""
import json
import subprocess

import pytest
from routerwatch.contract import decode
from routerwatch_collector.fleet.implant import file_mode

from fleet_messages import T0, device_name, login_anomaly, program_anomaly
from fleet_routers import AGENT, DROPPED, IMPLANT_SHA256, implanted_tree

DIGEST = "3f" * 32
IMPLANT = "fleet.implant"


def test_the_same_program_on_three_devices_is_one_implant(fleet):
    fleet.feed([program_anomaly(device_name(0), 1, DIGEST)])
    assert fleet.found(IMPLANT) == []
    fleet.feed([program_anomaly(device_name(1), 1, DIGEST, kind="integrity.exec_from_tmp",
                                port=None)])
    (implant,) = fleet.found(IMPLANT)
    assert implant.severity == "critical" and implant.count == 2
    assert implant.evidence["sha256"] == DIGEST
    assert sorted(implant.evidence["seen_as"]) == ["conn.new_listener:7777",
                                                   "integrity.exec_from_tmp"]
    fleet.feed([program_anomaly(device_name(2), 1, DIGEST)])
    (implant,) = fleet.found(IMPLANT)
    assert implant.count == 3
    assert sorted(implant.evidence["device_list"]) == [device_name(n) for n in range(3)]


def test_different_programs_bad_hashes_and_old_agents_raise_nothing(fleet):
    fleet.feed([program_anomaly(device_name(n), 1, "%064x" % n) for n in range(10)])
    fleet.feed([program_anomaly(device_name(n), 2, "XYZ" * 20) for n in range(10)])
    fleet.feed([program_anomaly(device_name(n), 3, DIGEST, kind="conn.beacon")
                for n in range(10)])
    fleet.feed([login_anomaly(device_name(n), 4, "45.1.2.3") for n in range(3)])
    assert fleet.found(IMPLANT) == []


def file_finding(device, seq, digest, kind, **evidence):
    """An integrity file finding as the agent's detectors send it (sources/overlay.py: class
    from the path and first bytes, mode as "%o" of st_mode)."""
    return program_anomaly(device, seq, digest, kind=kind, port=None, **evidence)


def test_integrity_files_count_only_when_they_are_code(fleet):
    # /etc/config/network, the same on five routers; a crontab nobody may execute
    fleet.feed([file_finding(device_name(n), 1, DIGEST, "integrity.baseline_drift",
                             path="/etc/config/network", mode="100644", **{"class": "config"})
                for n in range(5)])
    fleet.feed([file_finding(device_name(n), 2, "cd" * 32, "integrity.baseline_drift",
                             path="/etc/crontabs/root", mode="100600", **{"class": "script"})
                for n in range(5)])
    assert fleet.found(IMPLANT) == []
    # an ELF dropped in the overlay that no package owns, on two routers
    fleet.feed([file_finding(device_name(n), 3, "ab" * 32, "integrity.package_mismatch",
                             path="/usr/bin/.kw", reason="unowned", mode="100755", elf=True,
                             **{"class": "executable"}) for n in range(2)])
    # a replaced /rom program on one, the same script dropped executable on two others
    fleet.feed([file_finding(device_name(5), 4, "ab" * 32, "integrity.rom_shadowed",
                             path="/usr/sbin/dropbear", mode="100755",
                             **{"class": "executable"})])
    fleet.feed([file_finding(device_name(n), 5, "ef" * 32, "integrity.package_mismatch",
                             path="/etc/hotplug.d/iface/99-x", reason="unowned",
                             mode="100755", elf=False, **{"class": "script"})
                for n in (6, 7)])
    found = {a.evidence["sha256"]: a for a in fleet.found(IMPLANT)}
    assert set(found) == {"ab" * 32, "ef" * 32}
    assert found["ab" * 32].count == 3
    assert sorted(found["ab" * 32].evidence["seen_as"]) == [
        "integrity.package_mismatch", "integrity.rom_shadowed"]


def test_file_modes_as_agents_send_them():
    assert file_mode("100755") == 0o100755 and file_mode("755") == 0o755
    assert file_mode(0o100644) == 0o100644
    for bad in ("0x1ed", "100758", "", "1" * 8, -1, True, None, 1.5, "７５５"):
        assert file_mode(bad) is None


@pytest.fixture(scope="module")
def dropped_on_two_routers(tmp_path_factory):
    """What `routerwatch-agent --root <tree> --once` reports of two implanted trees with only
    the integrity watcher on: file findings, no process, no socket (contract JSON lines)."""
    lines = []
    for device in ("rw-real-00001", "rw-real-00002"):
        tree = implanted_tree(tmp_path_factory.mktemp(device) / "tree")
        result = subprocess.run(
            [AGENT, "--root", str(tree), "--once", "--log-file", str(tree / "var/log/messages"),
             "--set", "device_id=" + device, "--set", "watchers.connections=false",
             "--set", "watchers.processes=false", "--set", "watchers.logins=false",
             "--set", "state_dir=%s" % (tree.parent / "state")],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        lines.extend(line for line in result.stdout.splitlines() if line.strip())
    return lines


def test_an_executable_dropped_in_the_overlay_of_two_routers_is_an_implant(
        fleet, dropped_on_two_routers):
    dropped = [json.loads(line) for line in dropped_on_two_routers
               if json.loads(line)["evidence"].get("path") == "/" + DROPPED]
    assert {(a["device"], a["kind"]) for a in dropped} >= {
        ("rw-real-00001", "integrity.package_mismatch"),
        ("rw-real-00002", "integrity.package_mismatch")}
    assert {a["evidence"]["sha256"] for a in dropped} == {IMPLANT_SHA256}
    assert all(a["evidence"]["mode"] == "100755" for a in dropped if "mode" in a["evidence"])
    fleet.feed([decode(line.encode()) for line in dropped_on_two_routers], now=T0)
    implants = {a.evidence["sha256"]: a for a in fleet.found(IMPLANT)}
    implant = implants[IMPLANT_SHA256]
    assert implant.count == 2 and implant.severity == "critical"
    assert sorted(implant.evidence["device_list"]) == ["rw-real-00001", "rw-real-00002"]
    # seen only as files: the integrity watcher alone ran
    assert "integrity.package_mismatch" in implant.evidence["seen_as"]
    assert all(k.startswith("integrity.") for k in implant.evidence["seen_as"])
    # the config files both trees share (their /etc/shadow, /etc/config/*) are no implant
    shared_configs = {json.loads(line)["evidence"].get("sha256") for line in
                      dropped_on_two_routers
                      if json.loads(line)["evidence"].get("class") in ("routine", "config")}
    assert shared_configs and not shared_configs & set(implants)
