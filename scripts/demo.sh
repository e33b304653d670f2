#!/usr/bin/env bash
# The README's first command: set up, build, and run the demo (root required).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build
node dist/cli.js demo
