#!/usr/bin/env bash
# Install the Raqib agent on Raspberry Pi OS Bookworm or Trixie (run as root from the checkout).
# Usage: sudo deploy/pi/install.sh DEVICE_ID
# Then enrol (docs/deploy-pi.md): raqib enroll request -> HQ -> raqib enroll install.
set -euo pipefail
device_id="${1:?usage: install.sh DEVICE_ID}"
src="$(cd "$(dirname "$0")/../.." && pwd)"
prefix=/opt/raqib

apt-get update -qq
# picamera2 comes from Raspberry Pi OS (it needs the system libcamera); gpiozero + lgpio for GPIO.
apt-get install -y -qq python3-venv python3-picamera2 python3-gpiozero python3-lgpio python3-alsaaudio gpsd

id raqib >/dev/null 2>&1 || useradd --system --home-dir /var/lib/raqib --shell /usr/sbin/nologin \
    --groups video,gpio,dialout,audio raqib

if [ "$src" != "$prefix" ]; then
    mkdir -p "$prefix"
    cp -a "$src"/. "$prefix"/
fi
# System site packages: picamera2/libcamera and gpiozero come from apt, not PyPI.
python3 -m venv --system-site-packages "$prefix/.venv"
"$prefix/.venv/bin/pip" install -q --upgrade pip
"$prefix/.venv/bin/pip" install -q "$prefix"

install -d -m 0755 /etc/raqib
if [ ! -f /etc/raqib/agent.toml ]; then
    sed "s/^id = .*/id = \"$device_id\"/" "$prefix/deploy/agent.example.toml" > /etc/raqib/agent.toml
fi
install -d -o raqib -g raqib -m 0700 /var/lib/raqib
install -m 0644 "$prefix/systemd/raqib-agent.service" /etc/systemd/system/raqib-agent.service
systemctl daemon-reload

cat <<TXT
Installed. Next, as user raqib:
  sudo -u raqib $prefix/.venv/bin/raqib --config /etc/raqib/agent.toml enroll request --out /media/usb/request
take the folder to HQ, bring back the pack, then:
  sudo -u raqib $prefix/.venv/bin/raqib --config /etc/raqib/agent.toml enroll install /media/usb/pack
  sudo systemctl enable --now raqib-agent
  $prefix/.venv/bin/raqib --config /etc/raqib/agent.toml status
TXT
