#!/usr/bin/env bash
# Install raqib and run its tests on Debian 13 (trixie) with Debian's Python 3.13, the system
# today's Raspberry Pi OS is built on, without a second machine: a trixie root made with
# debootstrap from Debian's packages, entered with chroot.
#
# Usage (as root, or with sudo):
#   scripts/debian13_check.sh [--root DIR] [--build-only] [--shell] [--jobs N] [-- PYTEST_ARGS...]
#
#   --root DIR      where the trixie root lives (default /var/tmp/raqib-trixie, or $RAQIB_TRIXIE_ROOT);
#                   made on the first run, reused (and its packages topped up) afterwards
#   --build-only    make or update the root and stop
#   --shell         open a shell in the root with the repository copy and its venv instead of pytest
#   --jobs N        deal the test files to N pytest processes run side by side (default 1);
#                   PYTEST_ARGS then must not name test files
#   PYTEST_ARGS     passed to pytest (default: -q -p no:cacheprovider); e.g. -- tests/test_config.py -x
#
# The Debian mirror is the one this machine's apt already uses (override with $DEBIAN_MIRROR and
# $DEBIAN_SECURITY_MIRROR). Python packages come from the package index pip is configured with.
#
# What it does, idempotently:
#   1. apt-get install debootstrap (host) when missing
#   2. debootstrap --variant=minbase trixie into the root (skipped when the root is complete)
#   3. apt-get install inside it: python3.13, python3.13-venv and the Debian packages
#      scripts/setup.sh installs (mosquitto, postgresql, fonts, chromium + chromedriver,
#      iproute2, iptables, systemd)
#   4. bind-mounts the root on itself (so `ip netns exec` can remount inside it), then /proc,
#      /sys, /dev, /dev/pts, /dev/shm, a fresh /run and /tmp; all unmounted again on exit
#   5. copies the working tree (tracked and untracked-but-not-ignored files) to /src/raqib in
#      the root, makes /src/raqib/.venv with python3.13 and pip install -e '.[dev,hq]'
#   6. runs pytest there as root (as on the host: netns and iptables tests need it)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
argv=("$@")
root="${RAQIB_TRIXIE_ROOT:-/var/tmp/raqib-trixie}"
build_only=0
shell=0
jobs=1
pytest_args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --root) root="$2"; shift 2 ;;
        --build-only) build_only=1; shift ;;
        --shell) shell=1; shift ;;
        --jobs) jobs="$2"; shift 2 ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "debian13_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "${#pytest_args[@]}" -gt 0 ] || pytest_args=(-q -p no:cacheprovider)

if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=RAQIB_TRIXIE_ROOT,DEBIAN_MIRROR,DEBIAN_SECURITY_MIRROR "$0" "${argv[@]}"
fi
case "$root" in
    /|"$repo"|"$repo"/*) echo "debian13_check: the root must lie outside the repository: $root" >&2; exit 2 ;;
esac

log() { echo "debian13_check: $*" >&2; }

# --- the Debian mirror this machine already uses -------------------------------------------
host_mirror() {  # $1: "main" or "security"
    apt-get indextargets --format '$(REPO_URI)|$(RELEASE)|$(LABEL)' 2>/dev/null | sort -u |
        while IFS='|' read -r uri release label; do
            case "$1:$label:$release" in
                main:Debian:*-updates|main:Debian:*-backports|main:Debian:*-security) ;;
                main:Debian:*) echo "${uri%/}"; break ;;
                security:Debian-Security:*) echo "${uri%/}"; break ;;
            esac
        done
}
mirror=""
security_mirror=""
find_mirrors() {  # only when apt or debootstrap has work to do (apt-get indextargets can be slow)
    [ -z "$mirror" ] || return 0
    mirror="${DEBIAN_MIRROR:-$(host_mirror main)}"
    security_mirror="${DEBIAN_SECURITY_MIRROR:-$(host_mirror security)}"
    [ -n "$mirror" ] || { log "no Debian mirror in this machine's apt sources; set DEBIAN_MIRROR"; exit 2; }
}

# Debian packages inside the root: Python 3.13 and what scripts/setup.sh installs on a host
packages=(
    python3.13 python3.13-venv python3.13-dev build-essential ca-certificates
    mosquitto postgresql fonts-dejavu-core fonts-dejavu-extra fonts-noto-core fonts-liberation chromium chromium-driver
    iproute2 iptables systemd util-linux procps git
)

# --- 1-3: the root ---------------------------------------------------------------------------
command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

mounts=()
cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

mount_into() {  # mount_into TARGET mount-args...: mounts once, remembers it for cleanup
    local target="$1"; shift
    mkdir -p "$target"
    if ! mountpoint -q "$target"; then
        mount "$@" "$target"
        mounts+=("$target")
    fi
}

in_root() {  # run a command in the root with a clean environment (no host pip settings)
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

started=$(date +%s)
if [ ! -f "$root/.raqib-debootstrap-done" ]; then
    if [ -f "$root/.raqib-trixie-root" ]; then
        # an earlier debootstrap stopped half-way: start again from nothing
        if grep -q " $root[/ ]" /proc/mounts; then
            log "$root has mounts left from an earlier run; unmount them first (umount -R $root)"
            exit 1
        fi
        log "removing the unfinished root $root"
        rm -rf --one-file-system "$root"
    elif [ -d "$root" ] && [ -n "$(ls -A "$root")" ]; then
        log "$root exists, is not empty and was not made by this script; choose another --root"
        exit 2
    fi
    find_mirrors
    log "debootstrap trixie into $root from $mirror (a few minutes, mostly download)"
    mkdir -p "$root"
    touch "$root/.raqib-trixie-root"
    debootstrap --variant=minbase --components=main trixie "$root" "$mirror"
    touch "$root/.raqib-debootstrap-done"
fi

# mounts: the root on itself first, so that it is a mount point inside the chroot
mount_into "$root" --bind "$root"
mount_into "$root/proc" -t proc proc
mount_into "$root/sys" --rbind /sys
mount --make-rslave "$root/sys"
mount_into "$root/dev" --bind /dev
mount_into "$root/dev/pts" --bind /dev/pts
mount_into "$root/dev/shm" -t tmpfs -o mode=1777 shm
mount_into "$root/run" -t tmpfs -o mode=755 run
mount_into "$root/tmp" -t tmpfs -o mode=1777,size=50% tmp
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# the local certificate authorities this machine trusts (e.g. a company TLS proxy) are trusted in
# the root too, so that apt and pip there reach the same package indexes
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -f "$crt" ] || continue
    copy="$root/usr/local/share/ca-certificates/$(basename "$crt")"
    if ! cmp -s "$crt" "$copy"; then
        mkdir -p "$(dirname "$copy")"
        cp "$crt" "$copy"
        rm -f "$root/.raqib-ca-done"
    fi
done
if [ ! -f "$root/.raqib-ca-done" ] && [ -x "$root/usr/sbin/update-ca-certificates" ]; then
    in_root update-ca-certificates >/dev/null
    touch "$root/.raqib-ca-done"
fi

# packages' maintainer scripts must not start services inside the root
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

stamp="$root/.raqib-packages-$(echo "${packages[*]}" | md5sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    find_mirrors
    {
        echo "deb $mirror trixie main"
        echo "deb $mirror trixie-updates main"
        [ -z "$security_mirror" ] || echo "deb $security_mirror trixie-security main"
    } >"$root/etc/apt/sources.list"
    log "installing Debian packages in the root: ${packages[*]}"
    in_root apt-get update -qq
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >/dev/null
    in_root apt-get clean
    in_root update-ca-certificates >/dev/null
    touch "$root/.raqib-ca-done" "$stamp"
fi
log "root ready in $(($(date +%s) - started)) s: Debian $(cat "$root/etc/debian_version"), $(in_root python3.13 --version)"
[ "$build_only" -eq 0 ] || exit 0

# --- 5: the repository copy and its venv ---------------------------------------------------------
src="$root/src/raqib"
mkdir -p "$src"
log "copying the working tree to /src/raqib in the root"
# drop files deleted since the last copy, keep the root's .venv and build outputs
find "$src" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$src"

venv_stamp="$src/.venv/.installed-$(md5sum <"$repo/pyproject.toml" | cut -c1-12)"
if [ ! -f "$venv_stamp" ]; then
    log "making /src/raqib/.venv with python3.13 and installing raqib[dev,hq]"
    in_root python3.13 -m venv /src/raqib/.venv
    in_root /src/raqib/.venv/bin/python -m pip install -q --upgrade pip
    in_root sh -c "cd /src/raqib && .venv/bin/python -m pip install -q -e '.[dev,hq]'"
    touch "$venv_stamp"
fi
in_root /src/raqib/.venv/bin/raqib --version

# --- 6: the tests -------------------------------------------------------------------------------
if [ "$shell" -eq 1 ]; then
    in_root sh -c 'cd /src/raqib && exec bash -i'
    exit $?
fi
log "pytest ${pytest_args[*]} (Python $(in_root /src/raqib/.venv/bin/python -c 'import sys; print(sys.version.split()[0])'), $jobs job(s))"
if [ "$jobs" -le 1 ]; then
    set +e
    in_root sh -c 'cd /src/raqib && exec .venv/bin/python -m pytest "$@"' pytest "${pytest_args[@]}"
    rc=$?
    set -e
    exit "$rc"
fi

# --jobs N: the test files dealt round-robin to N pytest processes (each its own basetemp and
# log), for a machine whose CPUs are mostly taken by something else and whose tests mostly wait
# on brokers, databases and real-time clips. Each job prints its own summary line.
mapfile -t files < <(cd "$src" && ls tests/test_*.py)
pids=()
for ((j = 0; j < jobs; j++)); do
    group=()
    for ((k = j; k < ${#files[@]}; k += jobs)); do group+=("${files[k]}"); done
    in_root sh -c 'cd /src/raqib && exec .venv/bin/python -m pytest "$@"' pytest \
        --basetemp="/tmp/raqib-job$j" "${pytest_args[@]}" "${group[@]}" \
        >"$root/src/job$j.log" 2>&1 &
    pids+=($!)
    log "job $j: ${#group[@]} files, log $root/src/job$j.log"
done
rc=0
for ((j = 0; j < jobs; j++)); do
    wait "${pids[j]}" || rc=1
    echo "job $j: $(tail -n 1 "$root/src/job$j.log")"
done
exit "$rc"
