#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, types, unit tests, the resilience tier (in-process
# fault tests plus the real daemon on real FUSE mounts) with the patched pyfuse3 set-up builds, the
# terminal tier (the real commands in a pseudo-terminal), and the mount tests again with stock
# pyfuse3 (tox -e stock). Extra arguments go to tox (e.g. -e unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/tox "$@"
