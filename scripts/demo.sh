#!/usr/bin/env bash
# Set up, then refine the example topics offline: reports land in refine_outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/refine-kit batch --file examples/topics.txt --output-dir refine_outputs "$@"
