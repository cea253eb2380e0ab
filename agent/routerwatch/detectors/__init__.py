"""The registry of detectors: one line per detector module (module name = kind with '_' for '.')."""
import importlib

DETECTOR_MODULES = (
    # login.*
    "login_bruteforce",
    "login_spray",
    "login_success_after_failures",
    "login_new_source",
    # conn.*
    "conn_new_listener",
    "conn_raw_socket",
    "conn_fanout",
    "conn_scan",
    "conn_relay",
    "conn_beacon",
    "conn_table_pressure",
    # integrity.*
    "integrity_rom_shadowed",
    "integrity_package_mismatch",
    "integrity_baseline_drift",
    "integrity_special_file",
    "integrity_file_flood",
    "integrity_exec_from_tmp",
    "integrity_deleted_exe",
    "integrity_firmware_changed",
    # agent.*
    "agent_degraded",
)


def detector_classes():
    """{kind: class} for every registered detector, in registry order."""
    classes = {}
    for name in DETECTOR_MODULES:
        module = importlib.import_module("%s.%s" % (__name__, name))
        cls = module.DETECTOR
        classes[cls.kind] = cls
    return classes
