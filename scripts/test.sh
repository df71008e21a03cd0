#!/usr/bin/env bash
# Set up, lint (code and notebooks), then run every test and every notebook.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh full
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
notebooks=$(ls notebooks/*.ipynb 2>/dev/null || true)
if [ -n "$notebooks" ]; then
  exec .venv/bin/python -m pytest -q tests $notebooks --nbmake "$@"
fi
exec .venv/bin/python -m pytest -q tests "$@"
