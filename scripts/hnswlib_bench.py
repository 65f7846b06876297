#!/usr/bin/env python3
"""hnswlib on the same fvecs/ivecs files as quiverdb-bench, printing JSON lines with the same
fields: {"engine","dataset","n","dim","metric","ef","recall_at_10","qps","build_s","index_bytes"}.

QPS: one thread, one query per call (a python loop, as the Rust harness does one call per
query). index_bytes: process RSS growth over the build. Parameters: M, ef_construction as
given; metric l2 -> space "l2" (squared L2), cosine -> space "cosine".

Usage: hnswlib_bench.py --data DIR --metric l2|cosine [--m 16] [--ef-construction 200]
                        [--ef 16,32,64,128,256] [--threads 1] [--dataset NAME] [--k 10]
DIR holds base.fvecs, query.fvecs and groundtruth.ivecs.
"""
import argparse
import json
import os
import time

import hnswlib
import numpy as np


def read_fvecs(path):
    a = np.fromfile(path, dtype="<i4")
    return a.reshape(-1, a[0] + 1)[:, 1:].copy().view("<f4")


def read_ivecs(path):
    a = np.fromfile(path, dtype="<i4")
    return a.reshape(-1, a[0] + 1)[:, 1:].copy()


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", default="16,32,64,128,256")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dataset", default=None)
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()

    base = read_fvecs(os.path.join(a.data, "base.fvecs"))
    queries = read_fvecs(os.path.join(a.data, "query.fvecs"))
    gt = read_ivecs(os.path.join(a.data, "groundtruth.ivecs"))[:, : a.k]
    n, dim = base.shape
    dataset = a.dataset or os.path.basename(os.path.normpath(a.data))

    rss0 = rss_bytes()
    t = time.perf_counter()
    index = hnswlib.Index(space="l2" if a.metric == "l2" else "cosine", dim=dim)
    index.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
    index.add_items(base, np.arange(n), num_threads=a.threads)
    build_s = time.perf_counter() - t
    index_bytes = rss_bytes() - rss0

    for ef in [int(x) for x in a.ef.split(",") if x]:
        index.set_ef(max(ef, a.k))
        for q in queries[: min(50, len(queries))]:
            index.knn_query(q, k=a.k, num_threads=1)
        labels = []
        t = time.perf_counter()
        for q in queries:
            labels.append(index.knn_query(q, k=a.k, num_threads=1)[0][0])
        secs = time.perf_counter() - t
        hits = [len(set(l.tolist()) & set(g.tolist())) / float(a.k) for l, g in zip(labels, gt)]
        print(json.dumps({
            "engine": "hnswlib", "dataset": dataset, "n": int(n), "dim": int(dim),
            "metric": a.metric, "mode": "plain", "ef": ef,
            "recall_at_10": round(float(np.mean(hits)), 4), "qps": round(len(queries) / secs),
            "build_s": round(build_s, 3), "index_bytes": int(index_bytes),
            "build_threads": a.threads,
        }), flush=True)


if __name__ == "__main__":
    main()
