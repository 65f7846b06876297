#!/usr/bin/env bash
# How search time grows with the collection, QuiverDB's native HNSW beside hnswlib and faiss,
# on the document vectors `search_scaling` searches (the tutorial's texts, with
# frac(i * golden ratio) in place of the random draw).
#
#   scripts/flatness_peers.sh [DIR]        # DIR default target/flatness (about 1.6 GB)
#
# Environment: SIZES (default 1000,100000,1000000), K (3), EF (64), ROUNDS (15),
# BUILD_THREADS (2). Prints one JSON line per engine and size (index only: no embedding, no
# storage), then a table of microseconds per query and the ratio to the smallest size.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
dir="${1:-$root/target/flatness}"
sizes="${SIZES:-1000,100000,1000000}"
k="${K:-3}"
ef="${EF:-64}"
rounds="${ROUNDS:-15}"
threads="${BUILD_THREADS:-2}"

python="$("$root/scripts/bench_venv.sh")"

cargo build --release -q -p quiverdb --example search_scaling
cargo build --release -q -p quiverdb-bench
"$root/target/release/examples/search_scaling" "$sizes" --write-vectors "$dir"

out="$dir/results.jsonl"
echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
# The peers first: they also write each size's exact top-10 (groundtruth.ivecs).
"$python" "$root/scripts/flatness_peers.py" --data "$dir" --sizes "$sizes" --k "$k" \
    --ef "$ef" --rounds "$rounds" --build-threads "$threads" | tee "$out"
for n in ${sizes//,/ }; do
    "$root/target/release/quiverdb-bench" ann --base "$dir/docs_$n/base.fvecs" \
        --query "$dir/docs_$n/query.fvecs" --gt "$dir/docs_$n/groundtruth.ivecs" \
        --metric l2 --m 16 --ef-construction 200 --ef "$ef" --k "$k" --rounds "$rounds" \
        --threads "$threads" --engine native --dataset "docs_$n" | tee -a "$out"
done

"$python" - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    us = r["us_per_query"] if "us_per_query" in r else 1e6 / r["qps"]
    rec = r.get("recall", r.get("recall_at_10"))
    by.setdefault(r["engine"], []).append((r["n"], us, rec))
print("| engine | docs | µs per query | recall@k | vs smallest |")
print("|---|---:|---:|---:|---:|")
for engine, v in by.items():
    v.sort()
    for n, us, rec in v:
        print(f"| {engine} | {n:,} | {us:.1f} | {rec:.3f} | {us / v[0][1]:.2f}× |")
EOF
