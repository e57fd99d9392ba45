#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, types, unit tests, and the resilience tier (in-process
# fault tests plus the real daemon on real FUSE mounts). Extra arguments go to tox (e.g. -e unit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/tox "$@"
