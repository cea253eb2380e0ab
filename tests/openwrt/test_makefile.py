"""openwrt/Makefile: written to the packages feed's conventions for a Python application, its
version the agent's, and a DEPENDS line that covers every separately packaged part of the
standard library the agent imports."""
import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "openwrt/Makefile").read_text(encoding="utf-8")
AGENT = REPO / "agent/routerwatch"

sys.path.insert(0, str(REPO / "openwrt"))
from build_ipk import agent_version, makefile_metadata  # noqa: E402

# Which python3-* package of the feed holds a standard-library module that python3-light leaves
# out: the table of lang/python/python3-find-stdlib-depends.sh, plus python3-uuid
# (python3-package-uuid.mk), and http.client, which imports email.
STDLIB_PACKAGES = {
    "asyncio": "python3-asyncio", "cgi": "python3-cgi", "cgitb": "python3-cgitb",
    "unicodedata": "python3-codecs", "ctypes": "python3-ctypes", "dbm": "python3-dbm",
    "decimal": "python3-decimal", "distutils": "python3-distutils", "email": "python3-email",
    "logging": "python3-logging", "lzma": "python3-lzma",
    "multiprocessing": "python3-multiprocessing", "curses": "python3-ncurses",
    "ssl": "python3-openssl", "doctest": "python3-pydoc", "pydoc": "python3-pydoc",
    "readline": "python3-readline", "sqlite3": "python3-sqlite3", "unittest": "python3-unittest",
    "urllib": "python3-urllib", "xml": "python3-xml", "xmlrpc": "python3-xml",
    "uuid": "python3-uuid", "http": "python3-email",
}
THIRD_PARTY_PACKAGES = {"paho": "python3-paho-mqtt", "psutil": "python3-psutil"}
OPTIONAL = {"ujson"}          # imported only inside try/except ImportError
# in DEPENDS although no agent module imports it by name
DEPENDS_WITHOUT_IMPORT = {
    "python3-light": "the interpreter and the bulk of the standard library",
    "python3-openssl": "paho-mqtt imports ssl for mqtt.tls",
}


def agent_imports():
    """{top-level module: [(file, inside try/except ImportError)]} for every import in the agent."""
    found = {}
    for path in sorted(AGENT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                                   "ModuleNotFoundError")
                    for h in node.handlers):
                for inner in node.body:
                    for sub in ast.walk(inner):
                        guarded.add(id(sub))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], []).append(
                    (path.relative_to(REPO).as_posix(), id(node) in guarded))
    return found


def test_version_is_the_agents():
    match = re.search(r"^PKG_VERSION:=(\S+)$", MAKEFILE, re.M)
    assert match, "openwrt/Makefile needs PKG_VERSION:="
    assert match.group(1) == agent_version(), (
        "openwrt/Makefile PKG_VERSION must equal agent/routerwatch/__init__.py __version__")


def test_includes_come_in_the_feeds_order():
    includes = re.findall(r"^include (\S+)$", MAKEFILE, re.M)
    assert includes == ["$(TOPDIR)/rules.mk", "$(INCLUDE_DIR)/package.mk",
                        "$(TOPDIR)/feeds/packages/lang/python/python3-package.mk"]
    first_include = MAKEFILE.index("include $(INCLUDE_DIR)/package.mk")
    for var in ("PKG_NAME", "PKG_VERSION", "PKG_RELEASE", "PKG_LICENSE", "PKG_MAINTAINER",
                "PKG_BUILD_DEPENDS"):
        assert 0 < MAKEFILE.index(var + ":=") < first_include, var + " before package.mk"


def test_package_fields():
    top = dict(re.findall(r"^(PKG_[A-Z_]+):=(.*)$", MAKEFILE, re.M))
    assert top["PKG_NAME"] == "routerwatch"
    assert top["PKG_RELEASE"].isdigit()
    assert top["PKG_LICENSE"] == "GPL-2.0-only"
    assert re.fullmatch(r".+ <[^@\s]+@[^@\s]+>", top["PKG_MAINTAINER"])
    assert top["PKG_BUILD_DEPENDS"] == "python-setuptools/host"
    assert "PYPI_NAME" not in MAKEFILE, "not on PyPI: pypi.mk stays out"


def test_ends_with_the_py3package_calls():
    tail = [line for line in MAKEFILE.strip().splitlines()[-3:]]
    assert tail == ["$(eval $(call Py3Package,routerwatch))",
                    "$(eval $(call BuildPackage,routerwatch))",
                    "$(eval $(call BuildPackage,routerwatch-src))"]


def test_install_hook_installs_files_with_feed_modes():
    meta = makefile_metadata()
    installed = {target: (name, mode) for name, target, mode in meta["installs"]}
    assert installed == {
        "/etc/config/routerwatch": ("routerwatch.config", 0o600),
        "/etc/init.d/routerwatch": ("routerwatch.init", 0o755),
        "/etc/uci-defaults/99_routerwatch": ("routerwatch.defaults", 0o755),
    }
    for name, _mode in installed.values():
        assert (REPO / "openwrt/files" / name).is_file(), "openwrt/files/ leads to files/"
    assert meta["conffiles"] == ["/etc/config/routerwatch"]
    assert "$(INSTALL_BIN) $(PKG_INSTALL_DIR)/usr/bin/routerwatch-agent $(1)/usr/bin/" in MAKEFILE


def test_source_is_copied_from_the_checkout():
    prepare = re.search(r"^define Build/Prepare\n(.*?)^endef$", MAKEFILE, re.M | re.S).group(1)
    for needed in ("setup.py", "README.md", "agent"):     # setup.py reads the README
        assert "$(CURDIR)/../%s" % needed in prepare
        assert (REPO / needed).exists()


def test_agent_imports_only_the_standard_library_and_its_three_packages():
    stdlib = set(sys.stdlib_module_names)
    for module, uses in agent_imports().items():
        if module in stdlib or module == "routerwatch":
            continue
        if module in OPTIONAL:
            assert all(guarded for _file, guarded in uses), (
                "%s is optional on the router: import it inside try/except ImportError (%s)"
                % (module, uses))
            continue
        assert module in THIRD_PARTY_PACKAGES, (
            "%s (imported by %s) is not packaged for the router: only the standard library, "
            "paho-mqtt and ujson are" % (module, uses[0][0]))


def test_depends_covers_every_separately_packaged_import():
    depends = set(makefile_metadata()["depends"])
    needed = {}
    for module, uses in agent_imports().items():
        package = STDLIB_PACKAGES.get(module) or THIRD_PARTY_PACKAGES.get(module)
        if package and not all(guarded for _file, guarded in uses):
            needed.setdefault(package, uses[0][0])
    missing = {pkg: where for pkg, where in needed.items() if pkg not in depends}
    assert not missing, "add to DEPENDS in openwrt/Makefile: %s" % missing
    assert "python3-logging" in depends


@pytest.mark.parametrize("package", sorted(DEPENDS_WITHOUT_IMPORT))
def test_depends_without_a_direct_import_is_explained(package):
    assert package in makefile_metadata()["depends"]
    if package != "python3-light":
        assert package in MAKEFILE.split("define Package/routerwatch\n")[0], (
            "the comment above DEPENDS says why %s is there" % package)


def test_every_depend_is_needed():
    imported = {STDLIB_PACKAGES.get(m) or THIRD_PARTY_PACKAGES.get(m) for m in agent_imports()}
    for package in makefile_metadata()["depends"]:
        if package == "libc":
            continue
        assert package in imported or package in DEPENDS_WITHOUT_IMPORT, (
            "%s is in DEPENDS but nothing in the agent needs it" % package)


def test_feed_ci_test_script_checks_the_version():
    """openwrt/test.sh: what the packages feed's CI runs on the target after installing."""
    import subprocess
    from routerdouble import SHIM, busybox

    env = {"PATH": "%s:/usr/bin:/bin" % (SHIM / "bin"), "SHIM_PYTHON": sys.executable,
           "PYTHONPATH": str(REPO / "agent")}
    script = str(REPO / "openwrt/test.sh")
    release = makefile_metadata()["release"]
    ok = subprocess.run([busybox(), "ash", script, "routerwatch", "%s-%s" % (
        agent_version(), release)], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = subprocess.run([busybox(), "ash", script, "routerwatch", "0.0.0-1"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "does not print 0.0.0" in wrong.stdout
    other = subprocess.run([busybox(), "ash", script, "python3-psutil", "7.2.2-1"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 0
