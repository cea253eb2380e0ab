"""The device id: configured, else derived once from the board and remembered in the state dir,
so the collector keeps seeing one device when the interfaces change later."""
import re

from routerwatch.config import load
from routerwatch.identity import device_id


def board(tmp_path, interfaces):
    root = tmp_path / "root"
    for name, mac in interfaces.items():
        (root / "sys/class/net" / name).mkdir(parents=True)
        (root / "sys/class/net" / name / "address").write_text(mac + "\n")
    root.mkdir(exist_ok=True)
    return root


def config(root, state_dir=None, **raw):
    raw["root"] = str(root)
    if state_dir is not None:
        raw["state_dir"] = str(state_dir)
    return load(defaults=raw)


def test_a_configured_id_wins_and_nothing_is_written(tmp_path):
    root = board(tmp_path, {"eth0": "0c:8b:9d:11:22:33"})
    assert device_id(config(root, tmp_path / "state", device_id="edge-7")) == "edge-7"
    assert not (tmp_path / "state").exists()


def test_the_id_from_the_mac_is_remembered_and_survives_a_change_of_interfaces(tmp_path):
    root = board(tmp_path, {"eth0": "0c:8b:9d:11:22:33", "lo": "00:00:00:00:00:00"})
    state = tmp_path / "state"
    assert device_id(config(root, state)) == "rw-0c8b9d112233"
    assert (state / "device_id").read_text() == "rw-0c8b9d112233\n"
    # an upgrade renames the ports and eth0 now reports another MAC
    (root / "sys/class/net/eth0/address").write_text("0c:8b:9d:99:99:99\n")
    assert device_id(config(root, state)) == "rw-0c8b9d112233"


def test_without_mac_or_machine_id_a_random_id_is_made_once_and_kept(tmp_path):
    root = board(tmp_path, {})
    state = tmp_path / "state"
    first = device_id(config(root, state))
    assert re.match(r"\Arw-[0-9a-f]{12}\Z", first)
    assert device_id(config(root, state)) == first


def test_a_damaged_remembered_id_is_replaced(tmp_path):
    root = board(tmp_path, {"eth0": "0c:8b:9d:11:22:33"})
    state = tmp_path / "state"
    state.mkdir()
    (state / "device_id").write_text("routerwatch/+/#\n")
    assert device_id(config(root, state)) == "rw-0c8b9d112233"
    assert (state / "device_id").read_text() == "rw-0c8b9d112233\n"


def test_an_unwritable_state_dir_still_gives_the_derived_id(tmp_path):
    root = board(tmp_path, {"eth0": "0c:8b:9d:11:22:33"})
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert device_id(config(root, blocker / "state")) == "rw-0c8b9d112233"


def test_the_default_state_dir_is_taken_under_a_root_prefix(tmp_path):
    root = board(tmp_path, {"eth0": "0c:8b:9d:11:22:33"})
    assert device_id(config(root)) == "rw-0c8b9d112233"
    assert (root / "etc/routerwatch/device_id").read_text() == "rw-0c8b9d112233\n"
