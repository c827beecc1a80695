#!/usr/bin/env bash
# Install Head Wiki into ./.venv. `--test` also installs the test tools (pytest, Playwright,
# Debian's Chromium for the browser tests). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip >/dev/null

# Without a GPU, take the CPU build of torch first: an unpinned `torch` pulls gigabytes of CUDA packages.
if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    pip install -q torch
  else
    pip install -q torch==2.13.0
  fi
fi

if [[ $want_test == 1 ]]; then
  pip install -q -e ".[test]"
  if ! command -v chromium >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install Debian's chromium; the browser tests will be skipped" >&2
    else
      echo "note: install Debian's chromium (sudo apt-get install chromium) to run the browser tests" >&2
    fi
  fi
else
  pip install -q -e .
fi
# The query page's engine (DuckDB-WASM, pinned by checksum: docs/query.md), cached once for every later build.
# Not fatal: offline, `wiki build` still builds, and its query page says how to add the engine.
.venv/bin/wiki fetch-engine 2>/dev/null \
  || echo "note: could not fetch DuckDB-WASM for the query page (npm registry unreachable?); run .venv/bin/wiki fetch-engine later" >&2
echo "Head Wiki installed in .venv ($(python -c 'import torch; print("torch", torch.__version__)'))"
