#!/usr/bin/env bash
# Runs the suites that need no root as an unprivileged user with the wall clock moved
# ahead (libfaketime; default one year). A test that silently depends on today's date —
# a pinned clock on one side and the real clock on the other, a certificate minted
# "now" checked against a fixed instant — fails here long before it would fail on the
# calendar. Suites that need root skip themselves when not root and CI is unset, which
# is why this runs as `nobody` without CI; `npm test` under CI=true runs them.
#
#   scripts/test-ahead.sh            # one year ahead
#   AHEAD=+3650d scripts/test-ahead.sh
set -euo pipefail
cd "$(dirname "$0")/.."

AHEAD="${AHEAD:-+365d}"
command -v faketime >/dev/null || { echo "test-ahead: faketime is missing (apt-get install faketime)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "test-ahead: run as root (it drops to nobody itself)" >&2; exit 1; }

echo "test-ahead: wall clock $AHEAD, as nobody: $(faketime -f "$AHEAD" date -u +%FT%TZ)"
# --configLoader runner: nobody cannot write vite's bundled-config temp file under node_modules.
exec faketime -f "$AHEAD" setpriv --reuid=65534 --regid=65534 --clear-groups \
  env -u CI HOME=/tmp ./node_modules/.bin/vitest run --configLoader runner "$@"
