#!/usr/bin/env bash
# Home Assistant Core from PyPI in its own venv (.venv-ha, or $ROUTERWATCH_HA_VENV), for
# tests/homeassistant: the agent's MQTT discovery checked by the real thing. Installed once; a
# second run is a no-op (the stamp names the pinned release).
#
# Home Assistant 2025.4 is the newest release that runs on Python 3.13.0, which pyenv has here
# (later releases need 3.13.2 or newer). Besides Core this installs what the integrations the
# test starts need (their manifests' requirements: MQTT's paho-mqtt, the frontend and what
# Home Assistant sets up by default), so that Home Assistant, started with --skip-pip, never
# installs anything itself. uv installs it in about half the time pip needs.
set -euo pipefail
cd "$(dirname "$0")/.."
HA_VERSION=2025.4.4
REQUIREMENTS=(
  "homeassistant==$HA_VERSION"
  paho-mqtt==2.1.0                        # mqtt
  home-assistant-frontend==20250411.0     # frontend (Home Assistant starts in recovery mode without it)
  Pillow==11.1.0                          # image_upload (person, onboarding)
  cronsim==2.6 securetar==2025.2.1        # backup
  psutil-home-assistant==0.0.1            # hardware
)
VENV=${ROUTERWATCH_HA_VENV:-.venv-ha}
STAMP="$VENV/.installed-$HA_VERSION"
[ -f "$STAMP" ] && exit 0

python=""
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3 \
                 "$(command -v python3.13 || true)"; do
  if [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "install-homeassistant: no Python 3.13 found (pyenv's, or python3.13 on PATH);" \
       "tests/homeassistant will be skipped (under CI=true they fail)" >&2
  # a newcomer's `make test` on a plain Debian 12 (Python 3.11 only) runs everything else
  [ "${CI:-}" = true ] && exit 1
  exit 0
fi
echo "installing Home Assistant $HA_VERSION into $VENV with $python"
start=$(date +%s)
rm -rf "$VENV"
"$python" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q uv
"$VENV/bin/python" -m uv pip install -q --python "$VENV/bin/python" "${REQUIREMENTS[@]}"
touch "$STAMP"
echo "installed Home Assistant $HA_VERSION in $(( $(date +%s) - start )) s"
