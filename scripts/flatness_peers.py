#!/usr/bin/env python3
"""How search time grows with the collection for hnswlib and faiss, on search_scaling's vectors.

For each DATA/docs_N (base.fvecs and query.fvecs, written by
`search_scaling --write-vectors DATA`): the exact top-10 by brute force (written to
groundtruth.ivecs there, for quiverdb-bench), then hnswlib and faiss HNSW indexes built with
the same parameters as QuiverDB's default (M 16, ef_construction 200, squared L2), each timed
over all queries, k and ef as given, one thread, queries one after another inside the
library (one batch call, so no Python overhead per query): median of `--rounds` passes.
One JSON line per library and size: {"engine","n","k","ef","recall","us_per_query",...}.

Usage: flatness_peers.py --data DIR [--sizes 1000,100000,1000000] [--k 3] [--ef 64]
                         [--build-threads 2] [--rounds 15] [--engines hnswlib,faiss]
"""
import argparse
import json
import os
import time

import numpy as np

from hnswlib_bench import read_fvecs


def write_ivecs(path, rows):
    rows = np.asarray(rows, dtype="<i4")
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype="<i4")
    out[:, 0] = rows.shape[1]
    out[:, 1:] = rows
    out.tofile(path)


def exact_top(base, queries, k, chunk=100_000):
    """Row numbers of each query's k nearest rows by squared L2, nearest first."""
    best_d = np.full((len(queries), 0), np.inf, dtype="f4")
    best_i = np.zeros((len(queries), 0), dtype="i8")
    q_norms = (queries * queries).sum(1)[:, None]
    for start in range(0, len(base), chunk):
        part = base[start:start + chunk]
        d = q_norms - 2.0 * queries @ part.T + (part * part).sum(1)[None, :]
        kk = min(k, d.shape[1])
        idx = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        best_d = np.concatenate([best_d, np.take_along_axis(d, idx, 1)], 1)
        best_i = np.concatenate([best_i, idx + start], 1)
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    return best_i


def recall(found, truth, k):
    return float(np.mean([len(set(f[:k].tolist()) & set(t[:k].tolist())) / k
                          for f, t in zip(found, truth)]))


def timed(search, rounds):
    """Median seconds of `rounds` calls of `search`, and the last answer."""
    times, labels = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        labels = search()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], labels


def run_hnswlib(base, queries, a):
    import hnswlib
    t = time.perf_counter()
    index = hnswlib.Index(space="l2", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=a.m, ef_construction=a.ef_construction,
                     random_seed=100)
    index.add_items(base, np.arange(len(base)), num_threads=a.build_threads)
    build_s = time.perf_counter() - t
    index.set_ef(max(a.ef, a.k))
    index.knn_query(queries, k=a.k, num_threads=1)  # warm the caches once
    secs, labels = timed(lambda: index.knn_query(queries, k=a.k, num_threads=1)[0], a.rounds)
    return build_s, secs, labels


def run_faiss(base, queries, a):
    import faiss
    faiss.omp_set_num_threads(a.build_threads)
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(base.shape[1], a.m)
    index.hnsw.efConstruction = a.ef_construction
    index.add(base)
    build_s = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    index.hnsw.efSearch = max(a.ef, a.k)
    index.search(queries, a.k)
    secs, labels = timed(lambda: index.search(queries, a.k)[1], a.rounds)
    return build_s, secs, labels


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--ef", type=int, default=64)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--engines", default="hnswlib,faiss")
    a = p.parse_args()
    engines = {"hnswlib": run_hnswlib, "faiss": run_faiss}
    for n in [int(s) for s in a.sizes.split(",") if s]:
        d = os.path.join(a.data, f"docs_{n}")
        base = read_fvecs(os.path.join(d, "base.fvecs"))
        queries = read_fvecs(os.path.join(d, "query.fvecs"))
        gt_path = os.path.join(d, "groundtruth.ivecs")
        truth = exact_top(base, queries, 10)
        write_ivecs(gt_path, truth)
        for name in [e for e in a.engines.split(",") if e]:
            build_s, secs, labels = engines[name](base, queries, a)
            print(json.dumps({
                "engine": name, "n": n, "dim": int(base.shape[1]), "k": a.k, "ef": a.ef,
                "recall": round(recall(labels, truth, a.k), 4),
                "us_per_query": round(secs / len(queries) * 1e6, 2),
                "build_s": round(build_s, 1), "rounds": a.rounds,
            }), flush=True)


if __name__ == "__main__":
    main()
