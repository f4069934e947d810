"""Shared by the Python comparisons (torch_compare.py, jax_compare.py): loading the problems that
sg_bench_compare --export wrote, the agreement check against scoregrad's outputs, timing
(median over repeats) and the JSON result file that bench/compare/report.py reads."""
import json
import os
import statistics
import sys
import time

from safetensors.numpy import load_file

TOL_F32 = 1e-3  # max |a - ref| / max |ref| per output, as in bench_compare.cpp
TOL_F64 = 1e-9
# The CNF gradients: scoregrad and torchdiffeq take different dopri5 steps (their step-size
# controllers differ), so their results differ by the solution's error, not by rounding.
TOL_CNF_GRAD = 2e-2


def load_problem(problem_dir, workload):
    """Returns (problem, reference): name -> numpy array, without and with the 'ref.' prefix."""
    data = load_file(os.path.join(problem_dir, workload.replace("/", "_") + ".safetensors"))
    problem = {k: v for k, v in data.items() if not k.startswith("ref.")}
    ref = {k[4:]: v for k, v in data.items() if k.startswith("ref.")}
    return problem, ref


def params(problem, prefix="p."):
    return {k[len(prefix):]: v for k, v in problem.items() if k.startswith(prefix)}


def disagreement(ref, out):
    """Largest relative difference over the outputs scoregrad produced (nfe* are counters)."""
    import numpy as np

    worst, where = 0.0, ""
    for key, r in ref.items():
        if key.startswith("nfe"):
            continue
        if key not in out:
            return float("inf"), key + " (missing)"
        a = np.asarray(out[key], dtype=np.float64).reshape(r.shape)
        r = r.astype(np.float64)
        err = float(np.max(np.abs(a - r)) / max(float(np.max(np.abs(r))), 1e-30))
        if not err <= worst:
            worst, where = err, key
    return worst, where


def check(ref, out, f64=False, tol=None):
    err, where = disagreement(ref, out)
    ok = err <= (tol if tol is not None else TOL_F64 if f64 else TOL_F32)
    return ok, f"{'agree' if ok else 'DISAGREE'} {err:.3g} (worst: {where})"


QUICK = False  # --quick: a smoke test of the pipeline, one short repeat (not for the report)


def measure(fn, repeats=5, min_time=0.2):
    """Medians over `repeats` of the wall-clock and of the process CPU time per call (all threads),
    each repeat running >= min_time seconds, after one warm-up call. Returns (wall_s, cpu_s)."""
    if QUICK:
        repeats, min_time = 1, 0.01
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            break
        n = max(n * 2, int(n * min_time / max(elapsed, 1e-9) * 1.2))
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        wall.append((time.perf_counter() - t0) / n)
        cpu.append((time.process_time() - c0) / n)
    return statistics.median(wall), statistics.median(cpu)


class Results:
    """Collects {workload: {...}} and writes one JSON file per system."""

    def __init__(self, system, version, threads):
        self.doc = {"system": system, "version": version, "threads": threads, "results": {}, "notes": {}}

    def add(self, workload, **fields):
        self.doc["results"].setdefault(workload, {}).update(fields)
        line = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        print(f"{self.doc['system']:>16} {workload:<20} {line}", file=sys.stderr, flush=True)

    def note(self, key, text):
        self.doc["notes"][key] = text

    def write(self, path):
        with open(path, "w") as f:
            json.dump(self.doc, f, indent=1)
