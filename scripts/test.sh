#!/usr/bin/env bash
# The whole test suite: unit tests, the actor tests and the integration
# tests against real PostgreSQL and Redis (started here when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
exec cargo test --workspace "$@"
