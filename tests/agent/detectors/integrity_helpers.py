"""Events for the integrity.* detector tests."""
from routerwatch.events import FileFinding, FirmwareIdentity, ProcessInfo, ProcessSnapshot


def file_finding(finding, path, cls, first_scan=True, time=100.0, **detail):
    detail.setdefault("sensitive", False)
    detail["class"] = cls
    return FileFinding(time=time, finding=finding, path=path, detail=detail,
                       first_scan=first_scan)


def process(pid, exe, deleted=False, replaced=False, cmdline=None, name=None, ports=()):
    return ProcessInfo(pid=pid, ppid=1, name=name or (exe or "kthread").rsplit("/", 1)[-1],
                       exe=exe, exe_deleted=deleted, cmdline=cmdline or (exe or ""), uid=0,
                       parent_name="procd", listening_ports=tuple(ports), exe_replaced=replaced)


def snapshot(*processes, time=100.0):
    return ProcessSnapshot(time=time, processes=tuple(processes))


def release(version, revision):
    return {"DISTRIB_ID": "OpenWrt", "DISTRIB_RELEASE": version, "DISTRIB_REVISION": revision}


def firmware(version="23.05.3", revision="r23809-234f1a2efa", kernel="5.15.150",
             rom_hash="a" * 64, packages_hash="b" * 64, previous=None, time=100.0):
    record = {"release": release(version, revision), "board": "glinet,gl-mt3000",
              "model": "GL.iNet GL-MT3000", "kernel": kernel, "rom_hash": rom_hash,
              "rom_packages_hash": packages_hash}
    identity_hash = str(abs(hash(tuple(sorted((k, str(v)) for k, v in record.items())))))
    return FirmwareIdentity(
        time=time, release=record["release"], board=record["board"], model=record["model"],
        kernel=kernel, identity_hash=identity_hash,
        previous_hash=previous["identity_hash"] if previous else None,
        baseline_hash="c" * 64, package_manager="opkg", rom_hash=rom_hash,
        rom_packages_hash=packages_hash, previous=previous)


def record_of(identity):
    return {"release": identity.release, "board": identity.board, "model": identity.model,
            "kernel": identity.kernel, "rom_hash": identity.rom_hash,
            "rom_packages_hash": identity.rom_packages_hash,
            "identity_hash": identity.identity_hash}
