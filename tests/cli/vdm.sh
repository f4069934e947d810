# objective vdm end to end on the digits (configs/digits_vdm.yaml, shrunk): train, kill and
# resume (the schedule in the optimizer, EMA and checkpoint under schedule.*, resumed byte for
# byte), ancestral sampling with a chosen number of steps (levels 0..16 of the right shape), the
# held-out VLB in bits/dim with its standard error; refusals with status 2 naming the key; a
# blow-up stops the run with status 1 and keeps the last good checkpoint.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/common.bash" "$@"
ARGS=(-c "$ROOT/configs/digits_vdm.yaml" data.train_size=128 data.test_size=97 --steps 6
      --batch 16 model.channels=8 model.groups=4 train.warmup=2 train.checkpoint_every=3
      train.log_every=1)
# safetensors FILE: prints "name dtype shape" per tensor; with a name, its values' min max and
# whether all are finite integers.
st() {
  python3 - "$@" << 'EOF'
import json, math, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
h.pop("__metadata__", None)
if len(sys.argv) == 2:
    for k, v in sorted(h.items()): print(k, v["dtype"], v["shape"])
    sys.exit()
v = h[sys.argv[2]]; assert v["dtype"] == "F32", v
a, b = v["data_offsets"]; f.seek(8 + n + a); data = f.read(b - a)
x = struct.unpack("<%df" % (len(data) // 4), data)
print(min(x), max(x), all(math.isfinite(e) and e == int(e) for e in x), v["shape"])
EOF
}

"$SG" train -o straight "${ARGS[@]}" 2> /dev/null
expect_status 137 env SG_CLI_KILL_AFTER_STEP=4 "$SG" train -o killed "${ARGS[@]}" 2> /dev/null
"$SG" train -o killed --resume "${ARGS[@]}" 2> resume.log
grep -q "at step 3" resume.log || fail "did not resume at step 3: $(cat resume.log)"
cmp straight/checkpoint.safetensors killed/checkpoint.safetensors ||
  fail "the resumed VDM checkpoint differs from the uninterrupted one"
st straight/checkpoint.safetensors > tensors.txt
for name in model.schedule.gamma_0 model.schedule.delta ema.shadow.schedule.gamma_0; do
  grep -q "^$name " tensors.txt || fail "no $name in the checkpoint: $(grep schedule tensors.txt)"
done
grep -q "^optim.*schedule\.shape\." tensors.txt || fail "the schedule's interior has no optimizer state"
python3 - straight/metrics.jsonl << 'EOF' || fail "metrics.jsonl: $(cat straight/metrics.jsonl)"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 6 and all(math.isfinite(r["loss"]) and math.isfinite(r["bpd"]) and r["bpd"] > 0 for r in rows)
EOF
ok "train 6 steps, kill -9 after step 4, resume from step 3: identical checkpoint; schedule.* in model, optimizer and EMA; finite loss and bits/dim"

"$SG" sample straight -n 6 --steps 25 -o samples > sample.log
read -r lo hi ints shape <<< "$(st samples/samples.safetensors samples)"
[ "$shape" = "[6, 1, 8, 8]" ] || fail "samples have shape $shape"
[ "$ints" = True ] && python3 -c "import sys; sys.exit(not (0 <= $lo <= $hi <= 16))" ||
  fail "samples are not levels 0..16: min $lo max $hi integers $ints"
[ "$(json_get samples/sample.json method)" = ancestral ] && [ "$(json_get samples/sample.json steps)" = 25 ] ||
  fail "sample.json: $(cat samples/sample.json)"
is_png samples/samples.png || fail "samples.png is not a PNG"
ok "ancestral sampler, 25 steps: 6 samples of [1, 8, 8], levels $lo..$hi"

"$SG" likelihood straight -n 24 likelihood.elbo_draws=2 -o lik > lik.log
python3 - lik/likelihood.json << 'EOF' || fail "likelihood.json: $(cat lik/likelihood.json)"
import json, math, sys
r = json.load(open(sys.argv[1])); v = r["vlb"]
assert r["unit"] == "bits/dim" and r["held_out"] == 24 and v["draws"] == 2 and v["timesteps"] == 0
assert all(math.isfinite(v[k]) for k in ("nll_bound", "std_error", "prior", "reconstruction", "diffusion"))
assert v["std_error"] > 0 and v["nll_bound"] > 0
assert abs(v["prior"] + v["reconstruction"] + v["diffusion"] - v["nll_bound"]) < 1e-9 * v["nll_bound"] + 1e-12
EOF
grep -q "VDM VLB" lik.log || fail "likelihood printed no VLB: $(cat lik.log)"
ok "VLB $(json_get lik/likelihood.json vlb.nll_bound) +- $(json_get lik/likelihood.json vlb.std_error) bits/dim on 24 held-out digits"

# Refusals: status 2, one line naming the key.
expect_config_error "'objective.gamma_min'" "$SG" train -o bad "${ARGS[@]}" objective.gamma_min=6
expect_config_error "'objective.fourier_features'" "$SG" train -o bad "${ARGS[@]}" objective.fourier_features=true
expect_config_error "'objective.schedule'" "$SG" train -o bad "${ARGS[@]}" objective.schedule=cosine
expect_config_error "'objective.levels'" "$SG" train -o bad "${ARGS[@]}" objective.levels=256
expect_config_error "'sample.method'" "$SG" sample straight --method pc
expect_config_error "'likelihood.trace'" "$SG" likelihood straight likelihood.trace=exact
[ ! -e bad/checkpoint.safetensors ] || fail "a refused run wrote a checkpoint"
ok "refused with status 2 naming the key: gamma_min >= gamma_max, fourier_features, unknown schedule, levels != 17, pc on a vdm run, ODE keys for the VLB"

# A blow-up (a parameter becomes NaN after step 4): status 1, the step-3 checkpoint stays.
expect_status 1 env SG_CLI_NAN_AFTER_STEP=4 "$SG" train -o blowup "${ARGS[@]}" 2> blowup.log
grep -q "loss is nan at step 5" blowup.log && grep -q "step 3 is kept" blowup.log ||
  fail "blow-up: $(cat blowup.log)"
cmp <(st blowup/checkpoint.safetensors) <(st killed/checkpoint.safetensors) > /dev/null ||
  fail "the kept checkpoint's tensors differ in name or shape"
"$SG" train -o blowup --resume "${ARGS[@]}" 2> resume3.log
grep -q "at step 3" resume3.log || fail "the kept checkpoint did not resume: $(cat resume3.log)"
cmp straight/checkpoint.safetensors blowup/checkpoint.safetensors ||
  fail "resuming the kept checkpoint does not give the uninterrupted run"
ok "NaN after step 4: status 1, the step-3 checkpoint kept, resuming it gives the uninterrupted run"
