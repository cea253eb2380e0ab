#!/usr/bin/env bash
# Debian/Ubuntu packages the tests, the demo and the emulated router need. Idempotent.
set -euo pipefail
PACKAGES=(
  python3-venv
  mosquitto mosquitto-clients            # the real broker for integration tests and the demo
  openssl                                # throw-away CA and certificates for the TLS broker tests
  busybox-static                         # ash + applets to run the OpenWrt init script under test doubles
)
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
