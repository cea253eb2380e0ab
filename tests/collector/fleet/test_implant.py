"""fleet.implant: given anomalies naming a program by sha256, when two devices report the same
one, then one critical fleet anomaly, updated as more devices report it. Integrity file findings
count when their file is code, as the agent reports it (class, ELF, mode "100755")."""
from routerwatch_collector.fleet.implant import file_mode

from fleet_messages import device_name, login_anomaly, program_anomaly

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
