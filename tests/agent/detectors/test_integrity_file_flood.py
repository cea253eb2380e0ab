"""integrity.file_flood: given a scan that reached integrity.max_files, then one anomaly naming
where the files are, medium while only bulk data was left unchecked, high when code was."""
from integrity_helpers import file_finding
from routerwatch.detectors.integrity_file_flood import Config, IntegrityFileFlood


def flood(dropped_by_rank, where="/www/luci-static/cache"):
    return file_finding("flood", where, "data", max_files=50000, files=200012,
                        dropped=sum(dropped_by_rank.values()), dropped_by_rank=dropped_by_rank,
                        too_deep=0,
                        directories=[{"path": where + "/d%03d" % n, "files": 5000}
                                     for n in range(7)],
                        subtrees=[{"path": where, "files": 200000}])


def run(event, **config):
    return IntegrityFileFlood(Config(**config)).observe(event)


def test_junk_beyond_the_cap_is_medium_and_names_the_flood():
    (finding,) = run(flood({"data": 150012}))
    assert (finding.kind, finding.severity) == ("integrity.file_flood", "medium")
    assert finding.evidence["path"] == "/www/luci-static/cache"
    assert finding.evidence["subtrees"] == [{"path": "/www/luci-static/cache", "files": 200000}]
    assert len(finding.evidence["directories"]) == 5          # bounded
    assert finding.evidence["dropped"] == 150012 and finding.evidence["max_files"] == 50000
    assert "/www/luci-static/cache" in finding.summary and "150012" in finding.summary
    assert finding.incident == "overlay"


def test_code_left_unchecked_is_high():
    (finding,) = run(flood({"code": 3, "data": 150009}))
    assert finding.severity == "high" and "including code" in finding.summary
    assert run(flood({"access": 1}), code_dropped_severity="critical")[0].severity == "critical"


def test_other_findings_are_not_floods():
    assert run(file_finding("shadowed", "/usr/sbin/dropbear", "executable")) == []


def test_a_hostile_directory_name_is_clipped():
    (finding,) = run(flood({"data": 1}, where="/x" + "\udcff" * 5000))
    assert len(finding.evidence["path"]) <= 512


def test_a_flood_of_long_names_below_the_file_cap_says_the_bytes_ran_out():
    event = file_finding("flood", "/www/deep", "data", max_files=50000, max_path_bytes=8000000,
                         files=15003, dropped=13000, dropped_by_rank={"data": 13000}, too_deep=0,
                         directories=[], subtrees=[])
    (finding,) = run(event)
    assert finding.severity == "medium" and finding.evidence["max_path_bytes"] == 8000000
    assert "longer names than the scan keeps (8000000 bytes of paths" in finding.summary
    assert "more than integrity.max_files" not in finding.summary


def test_a_package_database_past_its_caps_is_medium_and_names_the_database():
    event = file_finding("flood", "/lib/apk/db/installed", "data",
                         database="/lib/apk/db/installed", limits=["bytes", "line_length"],
                         bytes_read=33554432, max_bytes=33554432, packages=390,
                         max_packages=4096, files=195000, max_files=200000, overlong_lines=1,
                         max_line_bytes=8192, rejected_lines=3)
    (finding,) = run(event)
    assert (finding.kind, finding.severity) == ("integrity.file_flood", "medium")
    assert finding.evidence["database"] == "/lib/apk/db/installed"
    assert finding.evidence["limits"] == ["bytes", "line_length"]
    assert finding.summary.startswith("the package database /lib/apk/db/installed holds more "
                                      "than 33554432 bytes, 1 lines longer than 8192 bytes")
    assert finding.incident == "package_database"      # not merged with a flood of files
