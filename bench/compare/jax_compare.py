"""JAX side of the benchmarks (jax.jit), on the problems sg_bench_compare --export wrote: same
weights, inputs and fixed noise, checked against scoregrad's outputs before anything is timed.
Compilation is timed separately from the steady state. No CNF here (JAX has no torchdiffeq).

usage: jax_compare.py PROBLEM_DIR OUT_JSON --threads N"""
import argparse
import math
import os
import sys
import time


def configure_threads(n):
    # XLA's CPU thread pool: one thread, or n threads for its intra-op parallelism.
    flags = f"--xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'} intra_op_parallelism_threads={n}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


if __name__ == "__main__":
    _args = argparse.ArgumentParser(add_help=False)
    _args.add_argument("--threads", type=int, default=1)
    configure_threads(_args.parse_known_args(sys.argv[1:])[0].threads)

import jax  # noqa: E402  (after XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402

jax.config.update("jax_enable_x64", True)  # for the f64 GEMM; every array below is typed explicitly

SIGMA = 0.5
CHAIN_OPS = 1000
GEMM_SIZES = (256, 512, 1024, 2048)


def mlp_score(p, b, x, t):
    """nn::MlpScoreNet: MLP([x, sin(2 pi t W), cos(2 pi t W)]), SiLU, Linear weights [in, out]."""
    proj = t[:, None] * b["embed.W"][None, :] * (2 * math.pi)
    h = jnp.concatenate([x, jnp.sin(proj), jnp.cos(proj)], -1)
    layers = sum(1 for k in p if k.endswith(".weight"))
    for i in range(layers):
        h = h @ p[f"mlp.layers.{i}.weight"] + p[f"mlp.layers.{i}.bias"]
        if i + 1 < layers:
            h = jax.nn.silu(h)
    return h


def objective_loss(kind, p, b, x, t, noise):
    s = lambda z: mlp_score(p, b, z, t)
    if kind == "dsm":
        r = s(x + noise * SIGMA) + noise / SIGMA
        return jnp.mean(jnp.sum(r * r, 1)) * (0.5 * SIGMA**2)
    if kind == "fd_ssm":
        B, D = x.shape
        y = mlp_score(p, b, jnp.concatenate([x + noise, x - noise]), jnp.concatenate([t, t]))
        yp, ym = y[:B], y[B:]
        a = yp + ym
        return jnp.mean(jnp.sum(a * a, 1) * 0.125 + jnp.sum((yp - ym) * noise, 1) * (0.5 * D) / jnp.sum(noise * noise, 1))
    if kind == "ism":  # exact trace: per-sample Jacobians by forward mode
        one = lambda xi, ti: mlp_score(p, b, xi[None], ti[None])[0]
        tr = jnp.trace(jax.vmap(jax.jacfwd(one))(x, t), axis1=1, axis2=2)
        y = s(x)
        return jnp.mean(0.5 * jnp.sum(y * y, 1) + tr)
    y, jv = jax.jvp(s, (x,), (noise,))  # (ds/dx) v per sample
    second = 0.5 * jnp.sum(y * y, 1) if kind == "ssm_vr" else 0.5 * jnp.sum(y * noise, 1) ** 2
    return jnp.mean(jnp.sum(noise * jv, 1) + second)


# ---- the digits U-Net (nn::UNet, channels 32, multipliers {1, 2}, GroupNorm 8) ----
def linear(p, name, x):
    return x @ p[name + ".weight"] + p[name + ".bias"]


def conv(p, name, x):
    w = p[name + ".weight"]
    k = w.shape[-1] // 2
    y = jax.lax.conv_general_dilated(x, w, (1, 1), [(k, k), (k, k)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + p[name + ".bias"][None, :, None, None]


def group_norm(p, name, x):
    N, C, H, W = x.shape
    g = math.gcd(8, C)
    xg = x.reshape(N, g, -1)
    mean = xg.mean(-1, keepdims=True)
    var = ((xg - mean) ** 2).mean(-1, keepdims=True)
    xn = ((xg - mean) / jnp.sqrt(var + 1e-5)).reshape(N, C, H, W)
    return xn * p[name + ".weight"][None, :, None, None] + p[name + ".bias"][None, :, None, None]


def res_block(p, name, x, temb):
    h = conv(p, name + ".conv1", jax.nn.silu(group_norm(p, name + ".norm1", x)))
    h = h + linear(p, name + ".temb_proj", jax.nn.silu(temb))[:, :, None, None]
    h = conv(p, name + ".conv2", jax.nn.silu(group_norm(p, name + ".norm2", h)))
    skip = conv(p, name + ".skip", x) if name + ".skip.weight" in p else x
    return skip + h


def unet(p, b, x, t):
    proj = t[:, None] * b["fourier.W"][None, :] * (2 * math.pi)
    temb = linear(p, "temb2", jax.nn.silu(linear(p, "temb1", jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], -1))))
    h = res_block(p, "down.0", conv(p, "in_conv", x), temb)
    skip0 = h
    N, C, H, W = h.shape
    h = res_block(p, "down.1", h.reshape(N, C, H // 2, 2, W // 2, 2).mean((3, 5)), temb)
    skip1 = h
    h = res_block(p, "mid2", res_block(p, "mid1", h, temb), temb)
    h = res_block(p, "up.1", jnp.concatenate([h, skip1], 1), temb)
    h = jnp.repeat(jnp.repeat(h, 2, axis=2), 2, axis=3)
    h = res_block(p, "up.0", jnp.concatenate([h, skip0], 1), temb)
    return conv(p, "out_conv", jax.nn.silu(group_norm(p, "out_norm", h)))


def build(workload, problem):
    """Returns (fn, args, to_outputs): fn is jitted; to_outputs maps its result to named outputs."""
    arr = lambda k: jnp.asarray(problem[k])
    p = {k: jnp.asarray(v) for k, v in common.params(problem).items()}
    b = {k: jnp.asarray(v) for k, v in common.params(problem, "b.").items()}
    if workload == "op_chain":
        c = arr("c")

        def chain(x):
            y = x
            for _ in range(CHAIN_OPS // 4):
                y = jnp.tanh(jnp.sin(y) * c) + c
            return jnp.sum(y)

        return jax.jit(jax.value_and_grad(chain)), (arr("x"),), lambda r: {"y": r[0], "grad.x": r[1]}
    if workload.startswith("gemm_"):
        return jax.jit(jnp.matmul), (arr("a"), arr("b")), lambda r: {"c": r}
    if workload in ("mlp_grad_x", "mlp_hvp_x"):
        t = arr("t")
        f = lambda xf: jnp.mean(mlp_score(p, b, xf.reshape(t.shape[0], -1), t) ** 2)
        if workload == "mlp_grad_x":
            return jax.jit(jax.grad(f)), (arr("x"),), lambda r: {"grad": r}
        hvp = lambda xf, v: jax.jvp(jax.grad(f), (xf,), (v,))[1]  # forward-over-reverse
        return jax.jit(hvp), (arr("x"), arr("v")), lambda r: {"hvp": r}
    if workload == "unet_dsm":
        def loss(p, x, t, z):
            r = unet(p, b, x + z * SIGMA, t) + z / SIGMA
            return jnp.mean(jnp.sum(r * r, (1, 2, 3))) * (0.5 * SIGMA**2)
    else:
        kind = "ism" if workload.startswith("mlp_ism") else workload[4:]
        loss = lambda p, x, t, z: objective_loss(kind, p, b, x, t, z)
    noise = arr("noise") if "noise" in problem else jnp.zeros((), jnp.float32)
    to_out = lambda r: {"loss": r[0], **{"grad." + k: v for k, v in r[1].items()}}
    return jax.jit(jax.value_and_grad(loss)), (p, arr("x"), arr("t"), noise), to_out


def timed(fn, args, to_out):
    """Compiles (timed), runs once (timed), returns (outputs, compile_s, first_run_s, step)."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    t1 = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    step = lambda: jax.block_until_ready(compiled(*args))
    return {k: np.asarray(v) for k, v in to_out(out).items()}, t1 - t0, t2 - t1, step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("problem_dir")
    ap.add_argument("out_json")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--workloads", default="", help="comma-separated subset")
    ap.add_argument("--quick", action="store_true", help="smoke test: one short repeat per workload")
    args = ap.parse_args()
    common.QUICK = args.quick
    res = common.Results("jax-jit", jax.__version__, args.threads)
    res.note("xla_flags", os.environ.get("XLA_FLAGS", ""))
    workloads = ["op_chain", "mlp_dsm", "mlp_ssm", "mlp_ssm_vr", "mlp_ism_d2", "mlp_ism_d16", "mlp_fd_ssm",
                 "mlp_grad_x", "mlp_hvp_x", "unet_dsm"]
    if args.workloads:
        workloads = [w for w in workloads if w in args.workloads.split(",")]
    for w in workloads:
        problem, ref = common.load_problem(args.problem_dir, w)
        try:
            out, compile_s, first_s, step = timed(*build(w, problem))
        except Exception as e:  # a failure is a result, reported as such
            res.add(w, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
            continue
        ok, line = common.check(ref, out)
        fields = {"agreement": line, "compile_s": compile_s, "first_call_s": first_s}
        if ok:
            fields["median_s"], fields["cpu_s"] = common.measure(step)
        res.add(w, **fields)
    for dt in ("f32", "f64"):
        problem, ref = common.load_problem(args.problem_dir, f"gemm_{dt}/256")
        out, _, _, _ = timed(*build("gemm_", problem))
        ok, line = common.check(ref, out, f64=dt == "f64")
        rng = np.random.default_rng(0)
        for n in GEMM_SIZES:
            fields = {"agreement": line + " (checked at n=256)"}
            if ok:
                mats = {k: rng.standard_normal((n, n)).astype(np.float32 if dt == "f32" else np.float64) for k in "ab"}
                _, compile_s, _, step = timed(*build("gemm_", mats))
                fields["compile_s"] = compile_s
                fields["median_s"], fields["cpu_s"] = common.measure(step)
            res.add(f"gemm_{dt}/{n}", **fields)
    res.write(args.out_json)


if __name__ == "__main__":
    main()
