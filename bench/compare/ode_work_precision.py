"""The peers' side of the ODE work-precision benchmark (issue 14 item 8), and the errors of all.

usage: ode_work_precision.py SG_JSON OUT_JSON [--quick] [--threads N] [--no-torch]

SG_JSON is what build*/bench/sg_ode_work_precision wrote (scoregrad's final states, gradients,
evaluations and times). This script solves the same problems with scipy's solve_ivp (RK23, RK45,
DOP853, Radau, BDF) and torchdiffeq (dopri5, bosh3, dopri8; odeint and odeint_adjoint for the
neural ODE's gradient), computes the references and then the error of every run, scoregrad's
included, against the same reference, and writes all points to OUT_JSON for bench/ode/report.py.

References (recorded in OUT_JSON with how they were made; nothing is a committed constant):
  arenstorf  exact: the orbit is periodic, y(T) = y(0) (T to 30 digits, Hairer's value)
  pleiades   scipy DOP853, rtol = atol = 1e-13
  node       scipy DOP853, rtol = atol = 1e-13
  node_grad  scoregrad odeint_checkpointed dopri5 at rtol = atol = 1e-12 (the exact gradient of
             that solve), cross-checked against torchdiffeq backprop dopri5 at 1e-12
Errors: max |y - ref| over the final state (absolute) for the solves; max |g - ref| / max |ref|
over all gradient entries (y0 and the 1348 parameters) for node_grad.

Evaluations are counted by a wrapper around the right-hand side in every system: scipy's nfev
leaves out the finite-difference Jacobian evaluations of Radau and BDF (they call the function
through another path), so "nfe" here is the wrapper's count and scipy's own nfev, njev and nlu
are kept beside it. For the gradients, nfe counts evaluations of f forward and in the backward
pass (adjoint and checkpointed re-evaluate f; backprop makes none, it runs one VJP per recorded
evaluation, which only the time shows).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp

QUICK = False

# ---- problems (as in bench/ode/work_precision.cpp) --------------------------------------------
MU = 0.012277471
MU1 = 1 - MU
ARENSTORF_T = 17.0652165601579625588917206249
ARENSTORF_Y0 = np.array([0.994, 0.0, 0.0, -2.00158510637908252240537862224])
PLEIADES_Y0 = np.array(
    [3, 3, -1, -3, 2, -2, 2, 3, -3, 2, 0, 0, -4, 4, 0, 0, 0, 0, 0, 1.75, -1.5, 0, 0, 0, -1.25, 1, 0, 0],
    dtype=np.float64,
)
MASSES = np.arange(1.0, 8.0)
BATCH, DIM, HIDDEN, GAIN, NODE_T, SEED = 16, 4, 32, 2.0, 4.0, 20261207


def arenstorf_np(t, z):
    y1, y2, v1, v2 = z
    d1 = ((y1 + MU) ** 2 + y2**2) ** 1.5
    d2 = ((y1 - MU1) ** 2 + y2**2) ** 1.5
    return np.array(
        [
            v1,
            v2,
            y1 + 2 * v2 - MU1 * (y1 + MU) / d1 - MU * (y1 - MU1) / d2,
            y2 - 2 * v1 - MU1 * y2 / d1 - MU * y2 / d2,
        ]
    )


def pleiades_np(t, z):
    x, y = z[:7], z[7:14]
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    w = MASSES[None, :] / (dx**2 + dy**2 + np.eye(7)) ** 1.5
    return np.concatenate([z[14:], (w * dx).sum(1), (w * dy).sum(1)])


class SplitMix:
    """splitmix64 -> uniform [0, 1), as node_weights() in work_precision.cpp."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed

    def uniform(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        z ^= z >> 31
        return (z >> 11) * 2.0**-53


def node_weights():
    g = SplitMix(SEED)

    def mat(rows, cols, scale):
        v = [(2 * g.uniform() - 1) * math.sqrt(3.0) * scale for _ in range(rows * cols)]
        return np.array(v).reshape(rows, cols)

    sizes = [DIM, HIDDEN, HIDDEN, DIM]
    params = []
    for l in range(3):
        params.append(mat(sizes[l], sizes[l + 1], GAIN / math.sqrt(sizes[l])))
        params.append(mat(sizes[l + 1], 1, 0.1).reshape(-1))
    return params, mat(BATCH, DIM, 1.0)


def node_np(params):
    w1, b1, w2, b2, w3, b3 = params

    def f(t, z):
        h = np.tanh(z.reshape(BATCH, DIM) @ w1 + b1)
        h = np.tanh(h @ w2 + b2)
        return (h @ w3 + b3).reshape(-1)

    return f


# ---- measurement ------------------------------------------------------------------------------
class Counted:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, *a):
        self.n += 1
        return self.f(*a)


def time_call(fn, first, min_time, repeats):
    """Seconds per call: min over `repeats` of the mean over enough calls to last min_time (the
    minimum, as in work_precision.cpp: on a shared machine other work only adds time)."""
    n = max(1, math.ceil(min_time / max(first, 1e-9)))
    best = first
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def tolerances(tightest=1e-12):
    step = 2 if QUICK else 1
    return [10.0 ** (-3 - 0.5 * k) for k in range(0, 19, step) if 10.0 ** (-3 - 0.5 * k) >= tightest * 0.999]


def timing():
    """(min_time, repeats): --quick times one more call after the measured one (the first call
    pays warm-up costs); the full run takes the minimum of 3 repeats of >= 0.2 s."""
    return (0.0, 1) if QUICK else (0.2, 3)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- scipy ------------------------------------------------------------------------------------
def run_scipy(problem, f, y0, t1, methods, budget):
    rows = []
    for method in methods:
        for tol in tolerances():
            fc = Counted(f)
            t0 = time.perf_counter()
            sol = solve_ivp(fc, (0.0, t1), y0, method=method, rtol=tol, atol=tol)
            first = time.perf_counter() - t0
            sec = time_call(lambda: solve_ivp(f, (0.0, t1), y0, method=method, rtol=tol, atol=tol), first, *timing())
            row = dict(problem=problem, system="scipy", method=method, mode="forward", tol=tol,
                       status="success" if sol.success else sol.message, nfe=fc.n, nfev=int(sol.nfev),
                       njev=int(sol.njev), nlu=int(sol.nlu), steps=len(sol.t) - 1, time_s=sec,
                       y=sol.y[:, -1].tolist())
            rows.append(row)
            log(f"scipy     {problem:<9} {method:<7} tol {tol:.1e}  nfe {fc.n:6d} (nfev {sol.nfev}, njev {sol.njev},"
                f" nlu {sol.nlu})  {sec * 1e3:9.3f} ms")
            if first > budget:
                log(f"scipy     {problem:<9} {method:<7} {first:.1f} s > {budget} s: tighter tolerances skipped")
                break
    return rows


# ---- torchdiffeq ------------------------------------------------------------------------------
def torch_problems(torch, params_np, y0_np):
    nn = torch.nn

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = 0

    class Arenstorf(Counter):
        def forward(self, t, z):
            self.n += 1
            y1, y2, v1, v2 = z[0], z[1], z[2], z[3]
            d1 = ((y1 + MU) ** 2 + y2**2) ** 1.5
            d2 = ((y1 - MU1) ** 2 + y2**2) ** 1.5
            return torch.stack([v1, v2, y1 + 2 * v2 - MU1 * (y1 + MU) / d1 - MU * (y1 - MU1) / d2,
                                y2 - 2 * v1 - MU1 * y2 / d1 - MU * y2 / d2])

    class Pleiades(Counter):
        def __init__(self):
            super().__init__()
            self.register_buffer("m", torch.arange(1.0, 8.0, dtype=torch.float64)[None, :])
            self.register_buffer("eye", torch.eye(7, dtype=torch.float64))

        def forward(self, t, z):
            self.n += 1
            x, y = z[:7], z[7:14]
            dx = x[None, :] - x[:, None]
            dy = y[None, :] - y[:, None]
            w = self.m / (dx**2 + dy**2 + self.eye) ** 1.5
            return torch.cat([z[14:], (w * dx).sum(1), (w * dy).sum(1)])

    class Node(Counter):
        def __init__(self):
            super().__init__()
            self.p = nn.ParameterList([nn.Parameter(torch.tensor(p)) for p in params_np])

        def forward(self, t, z):
            self.n += 1
            w1, b1, w2, b2, w3, b3 = self.p
            h = torch.tanh(z @ w1 + b1)
            h = torch.tanh(h @ w2 + b2)
            return h @ w3 + b3

    return Arenstorf, Pleiades, Node


def run_torchdiffeq(torch, torchdiffeq, problem, make, y0, t1, methods, budget):
    rows = []
    ts = torch.tensor([0.0, t1], dtype=torch.float64)
    y0 = torch.tensor(y0, dtype=torch.float64)
    for method in methods:
        for tol in tolerances():
            f = make()
            with torch.no_grad():
                t0 = time.perf_counter()
                y = torchdiffeq.odeint(f, y0, ts, rtol=tol, atol=tol, method=method)[-1]
                first = time.perf_counter() - t0
                nfe = f.n

                def again():
                    torchdiffeq.odeint(f, y0, ts, rtol=tol, atol=tol, method=method)

                sec = time_call(again, first, *timing())
            rows.append(dict(problem=problem, system="torchdiffeq", method=method, mode="forward", tol=tol,
                             status="success", nfe=nfe, time_s=sec, y=y.reshape(-1).tolist()))
            log(f"torchdiffeq {problem:<9} {method:<7} tol {tol:.1e}  nfe {nfe:6d}  {sec * 1e3:9.3f} ms")
            if first > budget:
                log(f"torchdiffeq {problem:<9} {method:<7} {first:.1f} s > {budget} s: tighter tolerances skipped")
                break
    return rows


def torch_grad(torch, torchdiffeq, Node, y0_np, strategy, tol, method="dopri5"):
    """Gradient of sum(y(T)^2) wrt (y0, parameters); returns (flat gradient, nfe fwd, nfe bwd)."""
    f = Node()
    y0 = torch.tensor(y0_np, dtype=torch.float64, requires_grad=True)
    ts = torch.tensor([0.0, NODE_T], dtype=torch.float64)
    if strategy == "backprop":
        y = torchdiffeq.odeint(f, y0, ts, rtol=tol, atol=tol, method=method)[-1]
    else:
        opts = dict(norm="seminorm") if strategy == "adjoint_seminorm" else None
        y = torchdiffeq.odeint_adjoint(f, y0, ts, rtol=tol, atol=tol, method=method, adjoint_options=opts)[-1]
    nf = f.n
    loss = (y * y).sum()
    wrt = [y0] + list(f.p)
    g = torch.autograd.grad(loss, wrt)
    nb = f.n - nf
    return np.concatenate([x.detach().numpy().reshape(-1) for x in g]), nf, nb


def run_torch_grads(torch, torchdiffeq, Node, y0_np, budget):
    rows = []
    for strategy in ("backprop", "adjoint", "adjoint_seminorm"):
        for tol in tolerances(1e-11):
            t0 = time.perf_counter()
            g, nf, nb = torch_grad(torch, torchdiffeq, Node, y0_np, strategy, tol)
            first = time.perf_counter() - t0
            sec = time_call(lambda: torch_grad(torch, torchdiffeq, Node, y0_np, strategy, tol), first, *timing())
            rows.append(dict(problem="node_grad", system="torchdiffeq", method="dopri5", mode=strategy, tol=tol,
                             status="success", nfe=nf, nfe_backward=nb, time_s=sec, grad=g.tolist()))
            log(f"torchdiffeq node_grad {strategy:<16} tol {tol:.1e}  nfe {nf:5d} + {nb:5d}  {sec * 1e3:9.3f} ms")
            if first > budget:
                log(f"torchdiffeq node_grad {strategy} {first:.1f} s > {budget} s: tighter tolerances skipped")
                break
    return rows


# ---- main -------------------------------------------------------------------------------------
def main():
    global QUICK
    ap = argparse.ArgumentParser()
    ap.add_argument("sg_json")
    ap.add_argument("out_json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-torch", action="store_true", help="scipy only")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds: a run longer than this skips that method's tighter tolerances "
                         "(default 20, --quick 5)")
    args = ap.parse_args()
    QUICK = args.quick
    budget = args.budget or (5.0 if QUICK else 20.0)
    sg = json.load(open(args.sg_json))

    params, y0_node = node_weights()
    flat = np.concatenate([p.reshape(-1) for p in params])
    if not (np.array_equal(flat, np.array(sg["node"]["params"])) and
            np.array_equal(y0_node.reshape(-1), np.array(sg["node"]["y0"]))):
        sys.exit("ode_work_precision.py: the neural ODE's weights differ from scoregrad's (splitmix64 mismatch)")
    f_node = node_np(params)

    versions = {"scipy": scipy.__version__, "numpy": np.__version__}
    refs = {"arenstorf": dict(how="exact: y(T) = y(0), T = 17.0652165601579625588917206249", y=ARENSTORF_Y0.tolist())}
    for name, f, y0, t1 in (("pleiades", pleiades_np, PLEIADES_Y0, 3.0), ("node", f_node, y0_node.reshape(-1), NODE_T)):
        fc = Counted(f)
        t0 = time.perf_counter()
        sol = solve_ivp(fc, (0.0, t1), y0, method="DOP853", rtol=1e-13, atol=1e-13)
        assert sol.success, sol.message
        refs[name] = dict(how=f"scipy {scipy.__version__} solve_ivp DOP853, rtol = atol = 1e-13", nfe=fc.n,
                          time_s=time.perf_counter() - t0, y=sol.y[:, -1].tolist())
        log(f"reference {name}: DOP853 1e-13, nfe {fc.n}")
    refs["node_grad"] = sg["references"]["node_grad"]

    rows = list(sg["runs"])
    problems = [("arenstorf", arenstorf_np, ARENSTORF_Y0, ARENSTORF_T), ("pleiades", pleiades_np, PLEIADES_Y0, 3.0),
                ("node", f_node, y0_node.reshape(-1), NODE_T)]
    for name, f, y0, t1 in problems:
        rows += run_scipy(name, f, y0, t1, ["RK23", "RK45", "DOP853", "Radau", "BDF"], budget)

    if not args.no_torch:
        import torch
        import torchdiffeq

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        versions.update(torch=torch.__version__, torchdiffeq=torchdiffeq.__version__)
        Arenstorf, Pleiades, Node = torch_problems(torch, params, y0_node)
        for name, make, y0, t1 in (("arenstorf", Arenstorf, ARENSTORF_Y0, ARENSTORF_T),
                                   ("pleiades", Pleiades, PLEIADES_Y0, 3.0), ("node", Node, y0_node, NODE_T)):
            rows += run_torchdiffeq(torch, torchdiffeq, name, make, y0, t1, ["bosh3", "dopri5", "dopri8"], budget)
        # the gradient's reference, cross-checked
        g_t, nf, nb = torch_grad(torch, torchdiffeq, Node, y0_node, "backprop", 1e-12)
        g_ref = np.array(refs["node_grad"]["grad"])
        refs["node_grad"]["cross_check"] = dict(
            how="torchdiffeq odeint (backprop) dopri5, rtol = atol = 1e-12", nfe=nf,
            rel_diff=float(np.max(np.abs(g_t - g_ref)) / np.max(np.abs(g_ref))))
        log(f"reference node_grad: torchdiffeq backprop at 1e-12 differs by {refs['node_grad']['cross_check']['rel_diff']:.2e}")
        rows += run_torch_grads(torch, torchdiffeq, Node, y0_node.reshape(BATCH, DIM), budget)

    # errors, all systems against the same references
    for r in rows:
        if r["problem"] == "node_grad":
            ref = np.array(refs["node_grad"]["grad"])
            g = np.array(r.pop("grad"))
            r["error"] = float(np.max(np.abs(g - ref)) / np.max(np.abs(ref)))
        else:
            ref = np.array(refs[r["problem"]]["y"])
            y = np.array(r.pop("y"), dtype=np.float64).reshape(-1)
            r["error"] = float(np.max(np.abs(y - ref)))
        if r.get("status") != "success":
            r["error_note"] = "solve did not succeed"
    for k in ("params", "y0"):
        sg["node"].pop(k, None)
    for v in refs.values():
        v.pop("grad", None)
    out = dict(quick=QUICK, threads=args.threads, versions=versions, node=sg["node"],
               methods_missing=sg.get("methods_missing", []), references=refs, runs=rows)
    with open(args.out_json, "w") as fp:
        json.dump(out, fp, indent=0)
    log(f"wrote {args.out_json}: {len(rows)} runs")


if __name__ == "__main__":
    main()
