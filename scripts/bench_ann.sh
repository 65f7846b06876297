#!/usr/bin/env bash
# ANN benchmark: QuiverDB's engines beside hnswlib on the same fvecs/ivecs files.
#
#   scripts/bench_ann.sh                         # synthetic 100,000 x 128, L2
#   scripts/bench_ann.sh ../shared/data/minilm-384 cosine
#
# Environment: SYNTH=N,DIM,NQ (default 100000,128,1000), EFS (default 16,32,64,128,256),
# THREADS (build threads, default 1), ENGINES (default "hnsw_rs hnsw_rs_direct native"),
# SELECTIVITY (default 0.5,0.1,0.01,0.001), DELETE (default 0.3), OUT (JSON lines file,
# default target/bench-ann/<dataset>.jsonl).
# Every measurement is one JSON line on stdout (and in OUT). QPS: one thread, one query per
# call. Engines that are not available in this build are reported and skipped.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
data="${1:-}"
metric="${2:-l2}"
synth="${SYNTH:-100000,128,1000}"
efs="${EFS:-16,32,64,128,256}"
threads="${THREADS:-1}"
engines="${ENGINES:-hnsw_rs hnsw_rs_direct native}"
selectivity="${SELECTIVITY:-0.5,0.1,0.01,0.001}"
delete="${DELETE:-0.3}"

python="$("$root/scripts/bench_venv.sh")"

cargo build --release -q -p quiverdb-bench
bench="$root/target/release/quiverdb-bench"

if [ -z "$data" ]; then
    dataset="synth-${synth//,/x}-$metric"
    data="$root/target/bench-ann/$dataset"
    if [ ! -f "$data/groundtruth.ivecs" ]; then
        "$bench" ann --synth "$synth" --metric "$metric" --write-synth "$data" >&2
    fi
else
    dataset="$(basename "$data")"
fi
out="${OUT:-$root/target/bench-ann/$dataset.jsonl}"
mkdir -p "$(dirname "$out")"
: > "$out"

echo "# $(date -u +%FT%TZ) $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
echo "# dataset $dataset ($data), metric $metric, ef $efs, build threads $threads" >&2

"$python" "$root/scripts/hnswlib_bench.py" --data "$data" --metric "$metric" \
    --ef "$efs" --threads "$threads" --dataset "$dataset" | tee -a "$out"

for engine in $engines; do
    extra=()
    if [ "$engine" != hnsw_rs_direct ]; then
        extra=(--filter-selectivity "$selectivity" --delete-fraction "$delete")
    fi
    if ! "$bench" ann --base "$data/base.fvecs" --query "$data/query.fvecs" \
        --gt "$data/groundtruth.ivecs" --metric "$metric" --m 16 --ef-construction 200 \
        --ef "$efs" --threads "$threads" --engine "$engine" --dataset "$dataset" \
        "${extra[@]}" | tee -a "$out"; then
        echo "# engine $engine failed or is not available; skipped" >&2
    fi
done
echo "# results in $out" >&2
python3 "$root/scripts/ann_table.py" "$out" >&2
