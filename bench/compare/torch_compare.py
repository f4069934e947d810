"""PyTorch side of the benchmarks (eager, and torch.compile where it works on CPU), on the
problems sg_bench_compare --export wrote: same weights, inputs and fixed noise, checked against
scoregrad's outputs before anything is timed. The CNF workloads use torchdiffeq (odeint and
odeint_adjoint, dopri5, rtol = atol = 1e-5).

usage: torch_compare.py PROBLEM_DIR OUT_JSON --threads N [--compile]"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchdiffeq

import common

SIGMA = 0.5  # DSM noise level, as in sg_workloads.cpp
CHAIN_OPS = 1000
GEMM_SIZES = (256, 512, 1024, 2048)


def tensors(problem, prefix="p.", grad=True):
    return {k: torch.from_numpy(v.copy()).requires_grad_(grad) for k, v in common.params(problem, prefix).items()}


def mlp_score(p, b, x, t):
    """nn::MlpScoreNet: MLP([x, sin(2 pi t W), cos(2 pi t W)]), SiLU, Linear weights [in, out]."""
    proj = t[:, None] * b["embed.W"][None, :] * (2 * math.pi)
    h = torch.cat([x, torch.sin(proj), torch.cos(proj)], -1)
    layers = sum(1 for k in p if k.endswith(".weight"))
    for i in range(layers):
        h = torch.addmm(p[f"mlp.layers.{i}.bias"], h, p[f"mlp.layers.{i}.weight"])
        if i + 1 < layers:
            h = F.silu(h)
    return h


def objective_loss(kind, p, b, x, t, noise):
    """The training objectives of objectives/objectives.hpp with fixed noise."""
    s = lambda z, tt=t: mlp_score(p, b, z, tt)
    if kind == "dsm":
        r = s(x + noise * SIGMA) + noise / SIGMA
        return (r * r).sum(1).mean() * (0.5 * SIGMA**2)
    if kind == "fd_ssm":
        B, D = x.shape
        y = s(torch.cat([x + noise, x - noise]), torch.cat([t, t]))
        yp, ym = y[:B], y[B:]
        a = yp + ym
        return ((a * a).sum(1) * 0.125 + ((yp - ym) * noise).sum(1) * (0.5 * D) / (noise * noise).sum(1)).mean()
    xt = x.detach().requires_grad_(True)
    y = s(xt)
    if kind == "ism":  # 1/2 |s|^2 + tr ds/dx by D backward passes
        tr = torch.zeros(x.shape[0])
        for i in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[:, i] = 1
            tr = tr + torch.autograd.grad(y, xt, e, create_graph=True)[0][:, i]
        return ((y * y).sum(1) * 0.5 + tr).mean()
    sv = (y * noise).sum(1)
    vjv = (torch.autograd.grad(sv.sum(), xt, create_graph=True)[0] * noise).sum(1)
    second = (y * y).sum(1) * 0.5 if kind == "ssm_vr" else sv * sv * 0.5
    return (vjv + second).mean()


# ---- the digits U-Net (nn::UNet, channels 32, multipliers {1, 2}, GroupNorm 8) ----
def linear(p, name, x):
    return x @ p[name + ".weight"] + p[name + ".bias"]


def conv(p, name, x):
    w = p[name + ".weight"]
    return F.conv2d(x, w, p[name + ".bias"], padding=w.shape[-1] // 2)


def group_norm(p, name, x):
    return F.group_norm(x, math.gcd(8, x.shape[1]), p[name + ".weight"], p[name + ".bias"], 1e-5)


def res_block(p, name, x, temb):
    h = conv(p, name + ".conv1", F.silu(group_norm(p, name + ".norm1", x)))
    h = h + linear(p, name + ".temb_proj", F.silu(temb))[:, :, None, None]
    h = conv(p, name + ".conv2", F.silu(group_norm(p, name + ".norm2", h)))
    skip = conv(p, name + ".skip", x) if name + ".skip.weight" in p else x
    return skip + h


def unet(p, b, x, t):
    proj = t[:, None] * b["fourier.W"][None, :] * (2 * math.pi)
    temb = linear(p, "temb2", F.silu(linear(p, "temb1", torch.cat([torch.sin(proj), torch.cos(proj)], -1))))
    h = conv(p, "in_conv", x)
    h = res_block(p, "down.0", h, temb)
    skip0 = h
    h = res_block(p, "down.1", F.avg_pool2d(h, 2), temb)
    skip1 = h
    h = res_block(p, "mid2", res_block(p, "mid1", h, temb), temb)
    h = res_block(p, "up.1", torch.cat([h, skip1], 1), temb)
    h = res_block(p, "up.0", torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skip0], 1), temb)
    return conv(p, "out_conv", F.silu(group_norm(p, "out_norm", h)))


# ---- the CNF: concat-squash layers (nn::CnfDynamics, tanh), exact trace ----
class CnfFunc(torch.nn.Module):
    def __init__(self, problem):
        super().__init__()
        self.p = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(torch.from_numpy(v.copy()))
                                         for k, v in common.params(problem).items()})
        self.layers = sum(1 for k in common.params(problem) if k.endswith(".layer.weight"))
        self.nfe = 0

    def field(self, t, z):
        tt = t.reshape(1, 1).to(z.dtype)
        h = z
        for i in range(self.layers):
            q = lambda n: self.p[f"layers_{i}_{n}"]
            h = (h @ q("layer_weight") + q("layer_bias")) * torch.sigmoid(tt @ q("gate_weight") + q("gate_bias")) \
                + tt @ q("hyper_bias_weight")
            if i + 1 < self.layers:
                h = torch.tanh(h)
        return h

    def forward(self, t, state):
        self.nfe += 1
        z = state[0]
        create = torch.is_grad_enabled()
        with torch.enable_grad():
            if not z.requires_grad:
                z = z.requires_grad_(True)
            f = self.field(t, z)
            tr = torch.zeros(z.shape[0])
            for i in range(z.shape[1]):
                tr = tr + torch.autograd.grad(f[:, i].sum(), z, create_graph=create, retain_graph=True)[0][:, i]
        return f, tr


def cnf_logp(func, x, adjoint):
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kw = {"adjoint_params": tuple(func.parameters())} if adjoint else {}
    t = torch.tensor([0.0, 1.0])
    z, delta = solve(func, (x, torch.zeros(x.shape[0])), t, rtol=1e-5, atol=1e-5, method="dopri5", **kw)
    z, delta = z[-1], delta[-1]
    D = x.shape[1]
    return -0.5 * (z * z).sum(1) - 0.5 * D * math.log(2 * math.pi) + delta


def build(workload, problem, compiled):
    """Returns (step, outputs): step() runs the timed unit, outputs() one run's results by name."""
    if workload == "op_chain":
        x = torch.from_numpy(problem["x"].copy()).requires_grad_(True)
        c = torch.from_numpy(problem["c"].copy())

        def chain(x):
            y = x
            for _ in range(CHAIN_OPS // 4):
                y = torch.tanh(torch.sin(y) * c) + c
            return y

        fwd = torch.compile(chain) if compiled else chain

        def run():
            y = fwd(x)
            return y, torch.autograd.grad(y, x)[0]

        return run, lambda: dict(zip(["y", "grad.x"], run()))
    if workload.startswith("gemm_"):
        a, b = (torch.from_numpy(problem[k].copy()) for k in "ab")
        mm = torch.compile(torch.mm) if compiled else torch.mm

        def run():
            with torch.no_grad():
                return mm(a, b)

        return run, lambda: {"c": run()}
    if workload in ("mlp_grad_x", "mlp_hvp_x"):
        p, b = tensors(problem, grad=False), tensors(problem, "b.", grad=False)
        t, v = (torch.from_numpy(problem[k].copy()) for k in ("t", "v"))
        xf = torch.from_numpy(problem["x"].copy()).requires_grad_(True)

        def f(xf):
            y = mlp_score(p, b, xf.view(t.shape[0], -1), t)
            return (y * y).mean()

        fc = torch.compile(f) if compiled else f
        if workload == "mlp_grad_x":
            run = lambda: torch.autograd.grad(fc(xf), xf)[0]
            return run, lambda: {"grad": run()}

        def hvp():  # double backward
            g = torch.autograd.grad(fc(xf), xf, create_graph=True)[0]
            return torch.autograd.grad(g, xf, v)[0]

        return hvp, lambda: {"hvp": hvp()}
    if workload.startswith("mlp_") or workload == "unet_dsm":
        p, b = tensors(problem), tensors(problem, "b.", grad=False)
        x, t = (torch.from_numpy(problem[k].copy()) for k in ("x", "t"))
        noise = torch.from_numpy(problem["noise"].copy()) if "noise" in problem else None
        if workload == "unet_dsm":
            def loss_fn():
                r = unet(p, b, x + noise * SIGMA, t) + noise / SIGMA
                return (r * r).sum((1, 2, 3)).mean() * (0.5 * SIGMA**2)
        else:
            kind = "ism" if workload.startswith("mlp_ism") else workload[4:]
            loss_fn = lambda: objective_loss(kind, p, b, x, t, noise)
        lc = torch.compile(loss_fn) if compiled else loss_fn
        names = list(p)

        def run():
            loss = lc()
            return loss, torch.autograd.grad(loss, [p[n] for n in names])

        def outputs():
            loss, g = run()
            return {"loss": loss, **{"grad." + n: gi for n, gi in zip(names, g)}}

        return run, outputs
    if workload.startswith("cnf_"):
        if compiled:
            raise RuntimeError("not attempted (torchdiffeq's adaptive loop)")
        func = CnfFunc(problem)
        x = torch.from_numpy(problem["x"].copy())
        names = [k for k in common.params(problem)]
        if workload == "cnf_logp":
            def run():
                with torch.no_grad():
                    return cnf_logp(func, x, False)

            def outputs():
                func.nfe = 0
                logp = run()
                return {"logp": logp, "nfe": func.nfe}

            return run, outputs
        adjoint = workload == "cnf_grad_adjoint"

        def run():
            func.nfe = 0
            logp = cnf_logp(func, x, adjoint)
            nfe_fwd = func.nfe
            g = torch.autograd.grad(-logp.mean(), list(func.parameters()))
            return logp, g, nfe_fwd, func.nfe - nfe_fwd

        def outputs():
            logp, g, nf, nb = run()
            out = {"logp": logp, "nfe": nf, "nfe_backward": nb}
            out.update({"grad." + n: gi for n, gi in zip(names, g)})
            return out

        return run, outputs
    raise KeyError(workload)


def to_numpy(out):
    return {k: (v.detach().numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("problem_dir")
    ap.add_argument("out_json")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--workloads", default="", help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="smoke test: one short repeat per workload")
    args = ap.parse_args()
    common.QUICK = args.quick
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    system = "pytorch-compile" if args.compile else "pytorch-eager"
    res = common.Results(system, torch.__version__, args.threads)
    res.note("torchdiffeq", torchdiffeq.__version__)
    res.note("blas", "; ".join(l.strip() for l in torch.__config__.show().splitlines() if "BLAS" in l or "MKL" in l)[:300])

    workloads = ["op_chain", "mlp_dsm", "mlp_ssm", "mlp_ssm_vr", "mlp_ism_d2", "mlp_ism_d16", "mlp_fd_ssm",
                 "mlp_grad_x", "mlp_hvp_x", "unet_dsm", "cnf_logp", "cnf_grad_backprop", "cnf_grad_adjoint"]
    if args.workloads:
        workloads = [w for w in workloads if w in args.workloads.split(",")]
    for w in workloads:
        problem, ref = common.load_problem(args.problem_dir, w)
        try:
            t0 = time.perf_counter()
            step, outputs = build(w, problem, args.compile)
            out = to_numpy(outputs())  # the first call: compiles when --compile
            first = time.perf_counter() - t0
        except Exception as e:  # torch.compile failing on a workload is a result, reported as such
            res.add(w, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        ok, line = common.check(ref, out, tol=common.TOL_CNF_GRAD if w.startswith("cnf_grad") else None)
        fields = {"agreement": line, "first_call_s": first}
        for k in ("nfe", "nfe_backward"):
            if k in out:
                fields[k] = float(out[k])
        if ok:
            fields["median_s"], fields["cpu_s"] = common.measure(step)
        res.add(w, **fields)

    # GEMM: agreement on the exported 256 x 256 problem, then timing on random matrices (eager only:
    # compiling one torch.mm calls the same BLAS).
    for dt in () if args.compile else ("f32", "f64"):
        problem, ref = common.load_problem(args.problem_dir, f"gemm_{dt}/256")
        _, outputs = build("gemm_", problem, args.compile)
        ok, line = common.check(ref, to_numpy(outputs()), f64=dt == "f64")
        rng = np.random.default_rng(0)
        for n in GEMM_SIZES:
            fields = {"agreement": line + " (checked at n=256)"}
            if ok:
                mats = {k: rng.standard_normal((n, n)).astype(np.float32 if dt == "f32" else np.float64) for k in "ab"}
                step, _ = build("gemm_", mats, args.compile)
                fields["median_s"], fields["cpu_s"] = common.measure(step)
            res.add(f"gemm_{dt}/{n}", **fields)
    res.write(args.out_json)


if __name__ == "__main__":
    main()
