#!/usr/bin/env bash
# Create .venv (if needed) and install refine_kit into it.
#
#   bash scripts/setup.sh          # the kit only: what the demo and the CLI need
#   bash scripts/setup.sh full     # plus the notebook and test tools (JupyterLab, pytest, ...)
#
# Idempotent: reinstalls only when pyproject.toml or the chosen extras changed. Uses uv when
# it is on PATH (or can be installed into .venv), which is several times faster; pip else.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
case "${1:-}" in
  "") ;;
  full) extras="[notebooks,dev]" ;;
  *) echo "usage: bash scripts/setup.sh [full]" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
say() { printf 'refine_kit setup: %s\n' "$*" >&2; }

if [ -d .venv ] && ! .venv/bin/python -c "import sys" >/dev/null 2>&1; then
  say ".venv exists but its Python does not run (moved, or made by another Python)."
  say "Delete it and run this again:  rm -rf .venv"
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version 2>&1)"
  if ! "$PYTHON" -m venv .venv 2>/tmp/refine-kit-venv.$$; then
    rm -rf .venv
    say "could not create .venv: $(tail -n 1 /tmp/refine-kit-venv.$$)"
    say "On Debian or Ubuntu, install the venv module first: sudo apt install python3-venv"
    rm -f /tmp/refine-kit-venv.$$
    exit 1
  fi
  rm -f /tmp/refine-kit-venv.$$
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  say ".venv has no pip (Debian and Ubuntu ship venv without it unless python3-venv is installed)."
  say "Install it (sudo apt install python3-venv), then: rm -rf .venv && bash scripts/setup.sh"
  exit 1
fi

stamp=.venv/.refine_kit-installed
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed=$(cat "$stamp" 2>/dev/null || true)
if [ "$installed" = "$hash $extras" ] || { [ -z "$extras" ] && [ "$installed" = "$hash [notebooks,dev]" ]; }; then
  exit 0  # up to date (a full install also serves the demo)
fi

uv=""
if command -v uv >/dev/null 2>&1; then
  uv=uv
elif .venv/bin/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1; then
  uv=.venv/bin/uv
fi
started=$SECONDS
if [ -n "$uv" ]; then
  say "installing refine_kit$extras with uv"
  "$uv" pip install --python .venv/bin/python -e ".$extras"
else
  say "installing refine_kit$extras with pip (uv not available)"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -e ".$extras"
fi
echo "$hash $extras" > "$stamp"
say "done in $((SECONDS - started)) s"
