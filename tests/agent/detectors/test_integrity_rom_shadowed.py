"""integrity.rom_shadowed: given overlay findings, then a severity by what was shadowed."""
from integrity_helpers import file_finding
from routerwatch.detectors.integrity_rom_shadowed import Config, IntegrityRomShadowed


def run(event, **config):
    return IntegrityRomShadowed(Config(**config)).observe(event)


def test_a_replaced_rom_program_is_high_from_the_first_scan():
    (finding,) = run(file_finding("shadowed", "/usr/sbin/dropbear", "executable",
                                  sha256="1" * 64, rom_sha256="2" * 64, size=324, rom_size=301))
    assert (finding.kind, finding.severity) == ("integrity.rom_shadowed", "high")
    assert finding.evidence["sha256"] == "1" * 64 and finding.evidence["rom_sha256"] == "2" * 64
    assert finding.evidence["first_scan"] is True
    assert finding.incident == "/usr/sbin/dropbear"
    assert "/usr/sbin/dropbear" in finding.summary


def test_libraries_high_scripts_medium():
    assert run(file_finding("shadowed", "/lib/libc.so", "library"))[0].severity == "high"
    assert run(file_finding("shadowed", "/etc/init.d/firewall", "script"))[0].severity == "medium"


def test_the_scripts_owners_are_told_to_edit_are_low():
    assert run(file_finding("shadowed", "/etc/rc.local", "script"))[0].severity == "low"
    assert run(file_finding("shadowed", "/etc/rc.local", "script"),
               owner_scripts="")[0].severity == "medium"


def test_what_every_configured_router_edits_is_info():
    for path in ("/etc/config/network", "/etc/shadow", "/etc/board.json",
                 "/etc/dropbear/dropbear_ed25519_host_key", "/lib/apk/db/installed"):
        (finding,) = run(file_finding("shadowed", path, "routine"))
        assert finding.severity == "info", path


def test_other_config_follows_its_option():
    assert run(file_finding("shadowed", "/etc/sysctl.conf", "config"))[0].severity == "info"
    assert run(file_finding("shadowed", "/etc/sysctl.conf", "config"),
               config_severity="low")[0].severity == "low"


def test_first_boot_uci_defaults_whiteouts_are_not_reported():
    assert run(file_finding("whiteout", "/etc/uci-defaults/10_migrate-shadow", "script")) == []


def test_a_deleted_rom_program_is_low_and_can_be_switched_off():
    (finding,) = run(file_finding("whiteout", "/usr/sbin/nft", "executable"))
    assert finding.severity == "low" and finding.evidence["change"] == "whiteout"
    assert run(file_finding("whiteout", "/usr/sbin/nft", "executable"),
               report_whiteouts=False) == []


def test_opaque_directories():
    assert run(file_finding("opaque", "/etc/init.d", "script"))[0].severity == "low"
    assert run(file_finding("opaque", "/etc/init.d", "script"), report_opaque=False) == []


def test_other_findings_are_not_this_detectors():
    assert run(file_finding("package_mismatch", "/usr/sbin/dropbear", "executable")) == []


def test_an_owner_package_upgrade_is_info_when_verified_low_when_not():
    upgraded = dict(package="dropbear", package_version="2025.88-r2",
                    rom_package_version="2025.88-r1", package_upgraded=True)
    (verified,) = run(file_finding("shadowed", "/usr/sbin/dropbear", "executable",
                                   package_verified=True, **upgraded))
    assert verified.severity == "info" and "upgraded to 2025.88-r2" in verified.summary
    assert verified.evidence["rom_package_version"] == "2025.88-r1"
    (unverified,) = run(file_finding("shadowed", "/usr/sbin/dropbear", "executable",
                                     package_verified=False, **upgraded))
    assert unverified.severity == "low"
    (same_version,) = run(file_finding("shadowed", "/usr/sbin/dropbear", "executable",
                                       package="dropbear", package_upgraded=False,
                                       package_verified=True))
    assert same_version.severity == "high"
