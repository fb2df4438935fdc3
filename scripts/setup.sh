#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, then .venv with raqib.
# Usage: scripts/setup.sh [EXTRAS]   (EXTRAS defaults to "dev,hq"; e.g. "dev,hq,train")
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-dev,hq}"
python="${PYTHON:-python3.11}"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
# the plate synthesiser's condensed faces are in fonts-dejavu-extra (not in -core)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf ] || need_apt+=(fonts-dejavu-extra)
# other faces for the European training plates (recipe 4.13, agent.synth.plates.LATIN_FONTS)
[ -f /usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf ] || need_apt+=(fonts-liberation)
# PostgreSQL server binaries: tests/test_hq_postgres.py starts its own throw-away cluster
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# the console's browser tests drive Debian's headless Chromium (no browser download)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# Arabic glyphs for the console's right-to-left pages and their screenshots
compgen -G "/usr/share/fonts/truetype/noto/NotoSansArabic-*" >/dev/null || need_apt+=(fonts-noto-core)
# iptables (and iproute2's `ip netns`): tests/test_fleet_hosts.py builds its simulated hosts
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp=".venv/.installed-${extras//,/-}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $python"
    "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing raqib[$extras] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[$extras]"
    # The teacher extra's rapidocr pulls OpenCV's GUI build (opencv-python), whose cv2 then
    # replaces the pinned opencv-python-headless in the same folder: a newer OpenCV resizes
    # and draws a little differently, so the reader's figures would no longer be the
    # device's. Keep the pinned build (rapidocr runs on it).
    if .venv/bin/python -m pip show -q opencv-python >/dev/null 2>&1; then
        echo "setup: keeping the pinned opencv-python-headless (removing opencv-python)"
        .venv/bin/python -m pip uninstall -q -y opencv-python
        .venv/bin/python -m pip install -q --force-reinstall --no-deps \
            "$(grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml)"
    fi
    touch "$stamp"
fi
.venv/bin/raqib --version
