#!/usr/bin/env bash
# Debian/Ubuntu packages, by what they are for. Idempotent.
#   bash ci/install-system-packages.sh demo    what `make demo` needs: make, a venv, mosquitto
#   bash ci/install-system-packages.sh [test]  everything the tests and benchmarks need (CI)
set -euo pipefail
DEMO_PACKAGES=(
  make python3-venv                      # `make demo`/`make test`, and the project's .venv
  mosquitto                              # the real broker for the demo and the integration tests
)
TEST_PACKAGES=(
  "${DEMO_PACKAGES[@]}"
  mosquitto-clients
  openssl                                # throw-away CA and certificates for the TLS broker tests
  busybox-static                         # ash + applets to run the OpenWrt init script under test doubles
  # the emulated router (ci/qemu, tests/e2e): QEMU, the host binaries copied into its image, the
  # tools that build the image (the Debian kernel is fetched with apt-get download, not installed)
  qemu-system-x86 squashfs-tools cpio iproute2
  dropbear-bin microsocks nftables conntrack python3-minimal libpython3.11-stdlib
  hydra curl                             # the attackers and the LAN client on the host side
  fail2ban                               # benchmarks: fail2ban-regex is the login-parsing reference
  chromium fonts-dejavu-core             # the dashboard's browser tests (headless, driven by Playwright)
  postgresql-15                          # the collector's fleet store: tests start their own server
)
case "${1:-test}" in
  demo) PACKAGES=("${DEMO_PACKAGES[@]}") ;;
  test) PACKAGES=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
