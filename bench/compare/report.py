"""Writes the side-by-side section of docs/benchmarks.md (between the BEGIN/END markers, the rest
of the file is kept) and docs/images/benchmarks.png from one run of scripts/bench:
  RESULTS/scoregrad_libtorch.json   Google Benchmark JSON of sg_bench_compare (medians)
  RESULTS/<system>.json             bench/compare/*_compare.py (pytorch-eager, pytorch-compile, jax-jit)
  RESULTS/env.json                  machine, load, thread and environment facts from scripts/bench

usage: report.py RESULTS DOC_MD CHART_PNG"""
import json
import os
import sys

BEGIN = "<!-- BEGIN scripts/bench: generated, do not edit by hand -->"
END = "<!-- END scripts/bench -->"
SYSTEMS = ["scoregrad", "libtorch", "pytorch-eager", "pytorch-compile", "jax-jit"]
TITLES = {"scoregrad": "scoregrad", "libtorch": "LibTorch", "pytorch-eager": "PyTorch eager",
          "pytorch-compile": "torch.compile", "jax-jit": "JAX jit"}
WORKLOADS = [  # (name, description)
    ("op_chain", "per-op overhead: 1000 elementwise ops (sin, *c, tanh, +c) on 1-element f32, fwd + bwd"),
    ("mlp_dsm", "MLP score net ([x, 16 Fourier features of t] -> 128 -> 128 -> 128 -> 2, SiLU), "
                "DSM step (loss + parameter gradient), batch 512"),
    ("mlp_ssm", "SSM, one Rademacher projection"),
    ("mlp_ssm_vr", "SSM-VR"),
    ("mlp_ism_d2", "exact implicit SM, D = 2"),
    ("mlp_ism_d16", "exact implicit SM, D = 16"),
    ("mlp_fd_ssm", "FD-SSM (score form, one batched forward)"),
    ("mlp_grad_x", "gradient of mean |s(x,t)|^2 w.r.t. x (R^1024)"),
    ("mlp_hvp_x", "Hessian-vector product of the same"),
    ("unet_dsm", "digits U-Net [64,1,8,8], DSM step"),
    ("cnf_logp", "2-D CNF log-likelihood, dopri5 rtol=atol=1e-5, exact trace, batch 512"),
    ("cnf_grad_backprop", "gradient of -mean log p, backprop through the solver"),
    ("cnf_grad_adjoint", "gradient of -mean log p, continuous adjoint"),
]
GEMM_SIZES = (256, 512, 1024, 2048)


def fmt(sec):
    if sec is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if sec >= scale:
            return f"{sec / scale:.3g} {unit}"
    return f"{sec * 1e9:.3g} ns"


def load(results):
    """times[system][workload] = median seconds; extra[system][workload] = other fields."""
    times = {s: {} for s in SYSTEMS}
    cpu = {s: {} for s in SYSTEMS}
    extra = {s: {} for s in SYSTEMS}
    gb = json.load(open(os.path.join(results, "scoregrad_libtorch.json")))
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for b in gb["benchmarks"]:
        if b.get("run_type") != "aggregate" or b.get("aggregate_name") != "median":
            continue
        name = b["run_name"].removesuffix("/real_time").removesuffix("/process_time")
        workload, system = name.rsplit("/", 1)
        times[system][workload] = b["real_time"] * scale[b["time_unit"]]
        cpu[system][workload] = b["cpu_time"] * scale[b["time_unit"]]
        extra[system][workload] = {k: b[k] for k in ("nfe",) if k in b}
    ctx = gb["context"]
    for key, value in ctx.items():
        if key.startswith("agreement."):
            extra["libtorch"].setdefault(key[10:], {})["agreement"] = value
    meta = {"context": ctx, "python": {}}
    for system in SYSTEMS[2:]:
        path = os.path.join(results, system + ".json")
        if not os.path.exists(path):
            continue
        doc = json.load(open(path))
        meta["python"][system] = doc
        for w, r in doc["results"].items():
            extra[system][w] = r
            if "median_s" in r:
                times[system][w] = r["median_s"]
                cpu[system][w] = r["cpu_s"]
    meta["cpu"] = cpu
    return times, extra, meta


def ratio_cell(times, system, w):
    t, base = times[system].get(w), times["scoregrad"].get(w)
    if t is None:
        return "—"
    if system == "scoregrad" or base is None:
        return fmt(t)
    return f"{fmt(t)} ({t / base:.2f}x)"


def write_section(times, extra, meta, env, chart_rel):
    ctx = meta["context"]
    threads = env["threads"]
    L = []
    L.append(f"Run {env['date']} on `{env['cpu']}` ({env['cpu_id']}, {env['nproc']} cores, {env['isa']}), commit `{env['commit']}`"
             f"{' plus uncommitted changes' if env.get('dirty') else ''}, built from {env['source']}.")
    L.append("")
    L.append(f"- **Threads: {threads} for every system**, each process pinned to {threads} core(s) with "
             f"`taskset -c {env['cpus']}` (OMP_NUM_THREADS / MKL_NUM_THREADS = {threads}; "
             f"scoregrad `omp_set_num_threads({threads})`; LibTorch and PyTorch `set_num_threads({threads})`, one "
             f"inter-op thread; JAX `XLA_FLAGS={meta['python'].get('jax-jit', {}).get('notes', {}).get('xla_flags', '?')}`).")
    L.append(f"- Load average before: {env['load_before']}, after: {env['load_after']} "
             f"(other work shared the {env['nproc']} cores; see 'Threads' above).")
    L.append(f"- `OPENBLAS_CORETYPE` / `OPENBLAS_L2_SIZE` were {env['openblas_env']} and **unset for every system** of "
             f"this run. LibTorch's BLAS (`libblas.so.3`) resolves to `{env['libblas']}`.")
    versions = [f"scoregrad `{env['commit']}`", f"LibTorch {ctx.get('libtorch_version', '?')} (Debian libtorch-dev "
                f"{env.get('libtorch_deb', '?')})"]
    for system in SYSTEMS[2:]:
        doc = meta["python"].get(system)
        if doc:
            versions.append(f"{TITLES[system]} {doc['version']}")
    eager = meta["python"].get("pytorch-eager", {}).get("notes", {})
    if "torchdiffeq" in eager:
        versions.append(f"torchdiffeq {eager['torchdiffeq']}")
    versions.append(f"Python {env['python']}, numpy {env.get('numpy', '?')}; Google Benchmark {env.get('gbench', '?')}")
    L.append("- Versions: " + ", ".join(versions) + " (pins: `bench/compare/requirements.txt`).")
    L.append(f"- Times are medians: scoregrad and LibTorch over {env['repetitions']} Google Benchmark repetitions "
             "in one process (`build-bench/bench/sg_bench_compare`), Python systems over "
             f"{env['repetitions']} repeats of >= {env['min_time']} s each after a warm-up call. Wall-clock time. Cells read `time (ratio)`, ratio = that system's time / "
             "scoregrad's: **above 1 scoregrad is faster**.")
    L.append(f"- Agreement before timing: each system's outputs (loss and every gradient, or the result) "
             f"against scoregrad's on identical weights, inputs and noise; max |a - b| / max |b| per output "
             f"<= 1e-3 (f32), 1e-9 (f64), 2e-2 for the CNF gradients (the two dopri5 implementations take "
             f"different steps). A system that disagrees is not timed. Worst values are in the agreement table.")
    L.append("")
    L.append(f"![time relative to scoregrad]({chart_rel})")
    L.append("")
    L.append("| workload | " + " | ".join(TITLES[s] for s in SYSTEMS) + " |")
    L.append("|---|" + "---:|" * len(SYSTEMS))
    for w, desc in WORKLOADS:
        if not any(w in times[s] for s in SYSTEMS) and not any(w in extra[s] for s in SYSTEMS):
            continue
        cells = []
        for s in SYSTEMS:
            cell = ratio_cell(times, s, w)
            err = extra[s].get(w, {}).get("error")
            if err:
                cell = "failed ¹"
            elif extra[s].get(w, {}).get("agreement", "").startswith("DISAGREE"):
                cell = "wrong result ²"
            cells.append(cell)
        L.append(f"| `{w}` {desc} | " + " | ".join(cells) + " |")
    failures = [(s, w, extra[s][w]["error"]) for s in SYSTEMS for w in extra[s] if extra[s][w].get("error")]
    if failures:
        L.append("")
        L.append("¹ Failed on this CPU build (the error as raised): " + "; ".join(
            f"{TITLES[s]} `{w}`: `{e}`" for s, w, e in failures) + ".")
    wrong = [(s, w, extra[s][w]["agreement"]) for s in SYSTEMS for w in extra[s]
             if extra[s][w].get("agreement", "").startswith("DISAGREE")]
    if wrong:
        L.append("")
        L.append("² Ran, but its outputs disagree with scoregrad's (and with the same code run eagerly), so it "
                 "was not timed: " + "; ".join(f"{TITLES[s]} `{w}`: {a}" for s, w, a in wrong) + ".")
    L.append("")

    # CPU time
    cpu = meta["cpu"]
    L.append("CPU time of the whole process (all its threads) per step, as a ratio to scoregrad's; less "
             "sensitive than wall-clock time to the other work on the machine, blind to idle waiting:")
    L.append("")
    L.append("| workload | scoregrad CPU time | " + " | ".join(TITLES[s] for s in SYSTEMS[1:]) + " |")
    L.append("|---|---:|" + "---:|" * (len(SYSTEMS) - 1))
    for w, _ in WORKLOADS:
        base = cpu["scoregrad"].get(w)
        if base is None:
            continue
        cells = [f"{cpu[s][w] / base:.2f}x" if w in cpu[s] else "—" for s in SYSTEMS[1:]]
        L.append(f"| `{w}` | {fmt(base)} | " + " | ".join(cells) + " |")
    L.append("")

    # per-op overhead
    L.append("**Per-op overhead** (op_chain time / 1000, forward + backward per op): " + ", ".join(
        f"{TITLES[s]} {times[s]['op_chain'] / 1000 * 1e9:.0f} ns" for s in SYSTEMS if "op_chain" in times[s])
        + ". JAX jit and torch.compile compile the whole chain into fused code, so their figures are not a "
        "per-op dispatch cost; they are what a user of those systems gets for a fixed chain.")
    L.append("")

    # HVP relative to gradient
    parts = []
    for s in SYSTEMS:
        g, h = times[s].get("mlp_grad_x"), times[s].get("mlp_hvp_x")
        if g and h:
            parts.append(f"{TITLES[s]} {h / g:.2f}x")
    L.append("**HVP / gradient** (same function, same input; scoregrad and JAX forward-over-reverse, LibTorch "
             "and PyTorch double backward): " + ", ".join(parts) + ".")
    L.append("")

    # GEMM
    peak32 = env["peak_f32"] * threads / env["nproc"]
    peak64 = env["peak_f64"] * threads / env["nproc"]
    L.append(f"**GEMM** n x n x n, GFLOP/s and % of the measured FMA peak for {threads} thread(s) "
             f"({peak32:.0f} f32 / {peak64:.0f} f64 GFLOP/s: {env['peak_f32']:.0f} / {env['peak_f64']:.0f} "
             f"on {env['nproc']} cores, from docs/gemm_candidates.md, scaled by threads):")
    L.append("")
    L.append("| dtype, n | " + " | ".join(TITLES[s] for s in SYSTEMS if s != "pytorch-compile") + " |")
    L.append("|---|" + "---:|" * (len(SYSTEMS) - 1))
    for dt, peak in (("f32", peak32), ("f64", peak64)):
        for n in GEMM_SIZES:
            w = f"gemm_{dt}/{n}"
            cells = []
            for s in SYSTEMS:
                if s == "pytorch-compile":
                    continue
                t = times[s].get(w)
                cells.append("—" if t is None else f"{2 * n**3 / t * 1e-9:.0f} ({100 * 2 * n**3 / t * 1e-9 / peak:.0f}%)")
            L.append(f"| {dt}, {n} | " + " | ".join(cells) + " |")
    L.append("")

    # CNF
    L.append("**CNF** (`nn::CnfDynamics` 2-64-64-64-2 concat-squash, tanh; `sg::cnf_log_likelihood` vs "
             "torchdiffeq `odeint` / `odeint_adjoint` on the same weights; NFE = evaluations of the augmented "
             "dynamics, forward + backward):")
    L.append("")
    L.append("| workload | scoregrad | NFE | torchdiffeq | NFE |")
    L.append("|---|---:|---:|---:|---:|")
    for w in ("cnf_logp", "cnf_grad_backprop", "cnf_grad_adjoint"):
        sg_nfe = extra["scoregrad"].get(w, {}).get("nfe")
        td = extra["pytorch-eager"].get(w, {})
        td_nfe = td.get("nfe")
        if td_nfe is not None and td.get("nfe_backward"):
            td_nfe = f"{td_nfe:.0f} + {td['nfe_backward']:.0f}"
        elif td_nfe is not None:
            td_nfe = f"{td_nfe:.0f}"
        L.append(f"| {w} | {fmt(times['scoregrad'].get(w))} | {'—' if sg_nfe is None else f'{sg_nfe:.0f}'} (fwd) | "
                 f"{ratio_cell(times, 'pytorch-eager', w)} | {td_nfe or '—'} |")
    L.append("")

    # time to first gradient
    L.append("**Time to first gradient** (the first DSM step of the MLP in a freshly built workload, in a "
             "process that has loaded its libraries and read or built the problem; seconds): "
             f"scoregrad {float(ctx.get('first_step_ms.scoregrad', 'nan')) / 1e3:.3g}, "
             f"LibTorch {float(ctx.get('first_step_ms.libtorch', 'nan')) / 1e3:.3g}" + "".join(
                 f", {TITLES[s]} {extra[s]['mlp_dsm']['first_call_s']:.3g}"
                 + (" (includes compilation, inductor caches disabled)" if s == "pytorch-compile" else "")
                 for s in ("pytorch-eager", "pytorch-compile") if "first_call_s" in extra[s].get("mlp_dsm", {}))
             + (f", JAX jit compile {extra['jax-jit']['mlp_dsm']['compile_s']:.3g} + first call "
                f"{extra['jax-jit']['mlp_dsm']['first_call_s']:.3g}" if "compile_s" in extra["jax-jit"].get("mlp_dsm", {}) else "")
             + ". JAX compile times of the other workloads: " + ", ".join(
                 f"{w} {r['compile_s']:.2g}" for w, r in extra["jax-jit"].items()
                 if "compile_s" in r and not w.startswith("gemm")) + ".")
    L.append("")

    # agreement
    L.append("<details><summary>Agreement with scoregrad before timing (max relative difference, worst output)</summary>")
    L.append("")
    L.append("| workload | " + " | ".join(TITLES[s] for s in SYSTEMS[1:]) + " |")
    L.append("|---|" + "---|" * (len(SYSTEMS) - 1))
    for w in [w for w, _ in WORKLOADS] + [f"gemm_{dt}/{n}" for dt in ("f32", "f64") for n in GEMM_SIZES]:
        cells = [extra[s].get(w, {}).get("agreement", "—").replace("|", "/") for s in SYSTEMS[1:]]
        L.append(f"| {w} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("</details>")
    L.append("")

    # where scoregrad loses
    losses = []
    for w, _ in WORKLOADS + [(f"gemm_{dt}/{n}", "") for dt in ("f32", "f64") for n in GEMM_SIZES]:
        base = times["scoregrad"].get(w)
        for s in SYSTEMS[1:]:
            t = times[s].get(w)
            if base and t and t < 0.97 * base:
                losses.append(f"`{w}` vs {TITLES[s]} ({t / base:.2f}x)")
    L.append("**Where scoregrad is slower in this run** (by more than 3%, this run's noise level): "
             + (", ".join(losses) if losses else "nowhere") + ".")
    return "\n".join(L)


def chart(times, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [w for w, _ in WORKLOADS if w in times["scoregrad"]] + \
            [f"gemm_{dt}/{n}" for dt in ("f32", "f64") for n in (256, 2048) if f"gemm_{dt}/{n}" in times["scoregrad"]]
    others = [s for s in SYSTEMS[1:] if any(w in times[s] for w in names)]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.5))
    h = 0.8 / max(len(others), 1)
    for i, s in enumerate(others):
        ys = [k + i * h for k in range(len(names))]
        vals = [times[s].get(w, float("nan")) / times["scoregrad"][w] for w in names]
        ax.barh(ys, vals, height=h, label=TITLES[s])
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yticks([k + 0.4 - h / 2 for k in range(len(names))])
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("time / scoregrad's time (log scale; > 1: scoregrad faster)")
    ax.set_title("scripts/bench: each system against scoregrad (cnf_*: torchdiffeq on PyTorch eager)", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    results, doc, png = sys.argv[1:4]
    times, extra, meta = load(results)
    env = json.load(open(os.path.join(results, "env.json")))
    os.makedirs(os.path.dirname(png), exist_ok=True)
    chart(times, png)
    section = write_section(times, extra, meta, env, os.path.relpath(png, os.path.dirname(doc)))
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n\n"
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    open(doc, "w").write(text)
    print(section)


if __name__ == "__main__":
    main()
