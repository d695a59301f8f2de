#!/usr/bin/env bash
# Runs rs-cms: makes sure Postgres and Redis are up, migrates, serves.
# Extra arguments go to the binary (e.g. `scripts/run.sh migrate`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
exec cargo run --release --bin rs-cms -- "$@"
