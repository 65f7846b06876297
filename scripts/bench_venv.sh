#!/usr/bin/env bash
# The benchmark scripts' Python: makes target/bench-venv with the peers' packages (numpy,
# hnswlib, faiss-cpu) unless it already imports them, then prints its python's path.
#
#   python="$(scripts/bench_venv.sh)"
set -euo pipefail

venv="$(cd "$(dirname "$0")/.." && pwd)/target/bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hnswlib, faiss, numpy' 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q numpy hnswlib faiss-cpu >&2
fi
echo "$venv/bin/python"
