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
  # the same router on a 32-bit MIPS (Malta board) and a big-endian (s390x) CPU: their emulators,
  # and readelf to find the libraries of those architectures' binaries
  qemu-system-mips qemu-system-misc binutils
  fail2ban                               # benchmarks: fail2ban-regex is the login-parsing reference
  chromium fonts-dejavu-core             # the dashboard's browser tests (headless, driven by Playwright)
  postgresql-15                          # the collector's fleet store: tests start their own server
  nats-server                            # a clustered MQTT broker (JetStream) for the agent's failover test
)
# and prometheus, fetched without installing it (below)
case "${1:-test}" in
  demo) PACKAGES=("${DEMO_PACKAGES[@]}") ;;
  test) PACKAGES=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# the emulated router's userland and kernel for those CPUs: `apt-get download <pkg>:<arch>`
# (ci/qemu/build_image.py) needs the architectures known to dpkg and their package lists
FOREIGN_ARCHES=(mipsel s390x)
update_lists=0
if [ "${1:-test}" = test ]; then
  for arch in "${FOREIGN_ARCHES[@]}"; do
    if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
      $SUDO dpkg --add-architecture "$arch"
      update_lists=1
    fi
  done
  if [ "$update_lists" = 1 ]; then
    echo "added the architectures ${FOREIGN_ARCHES[*]}: apt-get update"
    $SUDO apt-get update -q
  fi
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Prometheus, to scrape the collector's /metrics in a test: only its binary is needed, so the
# package is unpacked into a cache (tests/prometheus_server.py looks there) rather than installed, which
# would add a system user and start a service that scrapes this machine.
if [ "${1:-test}" = test ]; then
  PROMETHEUS_DIR="${ROUTERWATCH_PROMETHEUS_DIR:-$HOME/.cache/routerwatch-prometheus}"
  if [ ! -x "$PROMETHEUS_DIR/root/usr/bin/prometheus" ]; then
    echo "fetching prometheus (apt-get download) into $PROMETHEUS_DIR"
    mkdir -p "$PROMETHEUS_DIR"
    rm -f "$PROMETHEUS_DIR"/prometheus_*.deb
    if ! (cd "$PROMETHEUS_DIR" && apt-get download -q prometheus); then
      $SUDO apt-get update -q
      (cd "$PROMETHEUS_DIR" && apt-get download -q prometheus)
    fi
    debs=("$PROMETHEUS_DIR"/prometheus_*.deb)
    if [ ! -f "${debs[0]}" ]; then
      echo "apt-get download prometheus left no package in $PROMETHEUS_DIR" >&2
      exit 1
    fi
    dpkg-deb -x "${debs[0]}" "$PROMETHEUS_DIR/root"
    rm -f "${debs[@]}"
  fi
fi
