#!/usr/bin/env python3
"""Markdown tables from the JSON lines of scripts/bench_ann.sh (quiverdb-bench + hnswlib).

Usage: ann_table.py RESULTS.jsonl
"""
import json
import sys
from collections import OrderedDict


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
    plain = [r for r in rows if r.get("mode", "plain") == "plain"]
    efs = sorted({r["ef"] for r in plain})
    engines = list(OrderedDict.fromkeys(r["engine"] for r in plain))

    print("| engine | build s | RSS growth MiB | " + " | ".join(f"ef={e}" for e in efs) + " |")
    print("|---|---:|---:|" + "---|" * len(efs))
    for eng in engines:
        rs = {r["ef"]: r for r in plain if r["engine"] == eng}
        first = next(iter(rs.values()))
        cells = [f"{rs[e]['recall_at_10']:.3f} / {rs[e]['qps']:,.0f}" if e in rs else "–" for e in efs]
        print(f"| {eng} | {first['build_s']:.1f} | {first['index_bytes'] / 2**20:.0f} | " + " | ".join(cells) + " |")

    filt = [r for r in rows if r.get("mode") == "filtered"]
    if filt:
        print()
        sels = sorted({r["selectivity"] for r in filt}, reverse=True)
        print("Filtered (through the planner; recall vs exact top-10 among the allowed rows), "
              "recall / QPS (strategy):")
        print()
        print("| engine | ef | " + " | ".join(f"sel {s:g}" for s in sels) + " |")
        print("|---|---:|" + "---|" * len(sels))
        for eng in OrderedDict.fromkeys(r["engine"] for r in filt):
            for ef in efs:
                rs = {r["selectivity"]: r for r in filt if r["engine"] == eng and r["ef"] == ef}
                if not rs:
                    continue
                cells = [f"{rs[s]['recall_at_10']:.3f} / {rs[s]['qps']:,.0f} ({rs[s]['strategy']})"
                         if s in rs else "–" for s in sels]
                print(f"| {eng} | {ef} | " + " | ".join(cells) + " |")

    dels = [r for r in rows if r.get("mode", "").startswith("deleted")]
    if dels:
        print()
        print("After deletes (recall vs exact top-10 among the remaining rows), recall / QPS:")
        print()
        print("| engine | mode | deleted | " + " | ".join(f"ef={e}" for e in efs) + " |")
        print("|---|---|---:|" + "---|" * len(efs))
        keys = OrderedDict.fromkeys((r["engine"], r["mode"], r["delete_fraction"]) for r in dels)
        for eng, mode, frac in keys:
            rs = {r["ef"]: r for r in dels
                  if (r["engine"], r["mode"], r["delete_fraction"]) == (eng, mode, frac)}
            cells = [f"{rs[e]['recall_at_10']:.3f} / {rs[e]['qps']:,.0f}" if e in rs else "–" for e in efs]
            extra = f" (rebuild {next(iter(rs.values()))['compact_s']:.1f} s)" if mode == "deleted_compacted" else ""
            print(f"| {eng} | {mode}{extra} | {frac:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
