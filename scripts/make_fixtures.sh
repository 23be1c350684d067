#!/usr/bin/env bash
# Regenerate the synthetic speech fixtures (tests/fixtures, bench/fixtures,
# streamscribe/data). Needs espeak-ng, sox and flac only to regenerate:
#   apt-get install -y espeak-ng sox libsox-fmt-all flac
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/make_fixtures.py "$@"
