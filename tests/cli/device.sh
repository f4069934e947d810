# --device: runs trained, sampled and evaluated on the stand-in device (a testing device: the
# CPU's kernels behind the GPU seam, its memory unreadable as host pointers, so a tensor left on
# the CPU by mistake fails with a DeviceError) match the CPU runs: the same checkpoint bytes and
# loss log, the same samples (every method), the same likelihood figures (nats and bits/dim);
# a run trained on one device resumes on the other. Devices that do not exist are refused with
# status 2, naming the device, before anything is written.
source "$(dirname "$0")/common.bash" "$@"
DEV=standin:1

# same_json A B: the two JSON files agree everywhere but in timings ("seconds", "time_s") and
# the device that computed them ("device", checked on its own).
same_json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ("seconds", "time_s", "device")}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
def load(path):
    with open(path) as f:
        text = f.read()
    if path.endswith(".jsonl"):
        return [strip(json.loads(line)) for line in text.splitlines()]
    return strip(json.loads(text))
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ:\n{a}\n{b}")
PY
}

# ---- 2-D points (nats), every sampling method
TOY=(--data moons --steps 12 "${TINY[@]}" train.checkpoint_every=6)
for d in cpu "$DEV"; do
  "$SG" train -o "toy_${d%%:*}" --device "$d" "${TOY[@]}" 2> "train_${d%%:*}.log"
done
grep -q "on $DEV" train_standin.log || fail "train does not say it runs on $DEV"
cmp toy_cpu/checkpoint.safetensors toy_standin/checkpoint.safetensors ||
  fail "train: the $DEV checkpoint differs from the CPU's"
same_json toy_cpu/metrics.jsonl toy_standin/metrics.jsonl || fail "train: loss logs differ"
ok "train on $DEV: checkpoint byte-identical to the CPU run's, same loss log"

# Trained on one device, resumed on the other: still the same run.
"$SG" train -o half --device "$DEV" "${TOY[@]}" --steps 6 2> /dev/null
"$SG" train -o half --resume --device cpu "${TOY[@]}" 2> /dev/null
cmp toy_cpu/checkpoint.safetensors half/checkpoint.safetensors ||
  fail "a run trained on $DEV and resumed on the CPU differs from the CPU run"
ok "6 steps on $DEV, resumed on the CPU to 12: the CPU run's checkpoint"

for method in pc em ode; do
  if [ "$method" = ode ]; then how=(sample.rtol=1e-3 sample.atol=1e-3); else how=(--steps 15); fi
  for d in cpu "$DEV"; do
    "$SG" sample toy_cpu --device "$d" --method "$method" -n 60 -o "s_${method}_${d%%:*}" \
      "${how[@]}" > /dev/null
  done
  cmp "s_${method}_cpu/samples.safetensors" "s_${method}_standin/samples.safetensors" ||
    fail "sample --method $method: the $DEV samples differ from the CPU's"
  same_json "s_${method}_cpu/sample.json" "s_${method}_standin/sample.json" ||
    fail "sample --method $method: sample.json differs"
  [ "$(json_get "s_${method}_standin/sample.json" device)" = "$DEV" ] || fail "sample.json device"
  [ "$(json_get "s_${method}_cpu/sample.json" device)" = cpu ] || fail "sample.json device (cpu)"
done
ok "sample on $DEV (pc, em, ode): samples byte-identical to the CPU's, same MMD figures"

for d in cpu "$DEV"; do
  "$SG" likelihood toy_cpu --device "$d" -o "l_${d%%:*}" -n 40 --grid 4 likelihood.rtol=1e-3 \
    likelihood.atol=1e-3 likelihood.elbo_draws=2 sample.steps=10 > "l_${d%%:*}.txt"
done
same_json l_cpu/likelihood.json l_standin/likelihood.json || fail "likelihood.json differs"
[ "$(json_get l_standin/likelihood.json device)" = "$DEV" ] || fail "likelihood.json device"
printed() { grep -v -e ' s)$' -e '^wrote' "$1"; }  # without timings and paths
[ "$(printed l_cpu.txt)" = "$(printed l_standin.txt)" ] || fail "likelihood: printed figures differ"
cmp l_cpu/density.png l_standin/density.png || fail "likelihood: density.png differs"
ok "likelihood on $DEV: NLL, ELBO, density grid and sample check equal the CPU's"

# ---- digits (U-Net, dequantization, bits/dim with a Hutchinson trace)
DIG=(--data digits data.test_size=97 data.train_size=200 --steps 3 --batch 16 model.channels=8
  model.groups=4 train.log_every=1)
for d in cpu "$DEV"; do
  "$SG" train -o "dig_${d%%:*}" --device "$d" "${DIG[@]}" 2> /dev/null
  "$SG" sample "dig_${d%%:*}" --device "$d" -n 8 --steps 4 > /dev/null
  "$SG" likelihood "dig_${d%%:*}" --device "$d" -n 6 likelihood.rtol=1e-2 likelihood.atol=1e-2 \
    likelihood.elbo_draws=1 > /dev/null
done
cmp dig_cpu/checkpoint.safetensors dig_standin/checkpoint.safetensors ||
  fail "digits: the $DEV checkpoint differs from the CPU's"
cmp dig_cpu/samples.safetensors dig_standin/samples.safetensors ||
  fail "digits: the $DEV samples differ"
[ "$(json_get dig_cpu/likelihood.json unit)" = "bits/dim" ] || fail "digits unit"
same_json dig_cpu/likelihood.json dig_standin/likelihood.json ||
  fail "digits: bits/dim differ on $DEV"
ok "digits on $DEV: U-Net checkpoint, samples and bits/dim equal the CPU's"

# ---- devices that do not exist: status 2, one line naming the device, nothing written
refused() {  # refused NAME-IN-MESSAGE COMMAND...
  local want=$1
  shift
  set +e
  "$@" > /dev/null 2> refused.err
  local status=$?
  set -e
  [ $status -eq 2 ] || fail "$* should exit 2, got $status: $(cat refused.err)"
  grep -q "$want" refused.err || fail "$* should name $want: $(cat refused.err)"
  [ "$(wc -l < refused.err)" -eq 1 ] || fail "$*: more than one line: $(cat refused.err)"
}
refused "standin:7" "$SG" train -o never --device standin:7 "${TOY[@]}"
refused "cuda:99" "$SG" train -o never --device cuda:99 "${TOY[@]}"
refused "'gpu'" "$SG" sample toy_cpu --device gpu -o never
refused "cuda:99" "$SG" likelihood toy_cpu --device cuda:99 -o never
[ ! -e never ] || fail "a refused device still created the output directory"
set +e
"$SG" train -o cuda_run --device cuda --steps 1 "${TINY[@]}" > /dev/null 2> cuda.err
status=$?
set -e
if [ $status -ne 0 ]; then  # no CUDA build or no GPU here: refused the same way
  [ $status -eq 2 ] || fail "--device cuda: expected status 2, got $status: $(cat cuda.err)"
  grep -q "device cuda:0 does not exist" cuda.err || fail "--device cuda: $(cat cuda.err)"
  ok "--device cuda here: $(cat cuda.err)"
fi
ok "standin:7, cuda:99, gpu refused with status 2 naming the device, nothing written"
