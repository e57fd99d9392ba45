#!/usr/bin/env bash
# Set up, then mount a library in the foreground until Ctrl-C (or SIGTERM):
#   scripts/mount-demo.sh [MUSIC_FOLDER] [MOUNTPOINT]
# Without MUSIC_FOLDER a small demo library of real, tagged audio files is generated in ./demo-library.
# The mountpoint defaults to ./music; the index lives in ./.musicfs-state.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
library=${1:-}
mountpoint=${2:-$PWD/music}
if [ -z "$library" ]; then
    library=$PWD/demo-library
    [ -d "$library" ] || .venv/bin/musicfs demo "$library"
fi
mkdir -p "$mountpoint"
echo "mounting $library at $mountpoint (Ctrl-C or 'musicfs unmount $mountpoint' to stop)"
exec .venv/bin/musicfs mount "$mountpoint" --origin "$library" --state-dir "$PWD/.musicfs-state"
