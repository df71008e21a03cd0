#!/usr/bin/env bash
# Set up, then refine the example topics on the offline model: reports land in refine_outputs/.
# Offline whatever the shell holds (an exported OPENAI_API_KEY is not used); pass
# --backend openai (and --base-url/--model) to use a real model instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/refine-kit batch --file examples/topics.txt --output-dir refine_outputs \
  --backend offline "$@"
