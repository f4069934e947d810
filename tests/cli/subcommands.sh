# End-to-end runs of every subcommand on tiny settings: train (2-D toy from a YAML file, and
# digits with a small U-Net), sample with each method, likelihood with the density map, verify,
# and --help of each.
source "$(dirname "$0")/common.bash" "$@"

for sub in train sample likelihood verify; do
  "$SG" "$sub" --help | grep -q "Usage" || fail "$sub --help"
done
ok "--help of every subcommand"

cat > tiny.yaml <<'YAML'
data:
  name: moons
  train_size: 4000
  test_size: 200
model:
  hidden: 32
  layers: 2
train:
  steps: 30
  batch: 128
  warmup: 5
  log_every: 5
  checkpoint_every: 10
YAML
"$SG" train -c tiny.yaml -o toy --lr 1e-3 objective.name=ssm-vr
[ -f toy/checkpoint.safetensors ] || fail "no checkpoint"
[ "$(wc -l < toy/metrics.jsonl)" -eq 6 ] || fail "metrics.jsonl should have 6 lines"
grep -q '"name": "ssm-vr"' toy/config.json || fail "config.json lacks the override"
grep -q '"lr": 0.001' toy/config.json || fail "config.json lacks --lr"
is_png toy/loss.png || fail "loss.png"
ok "train (YAML + shorthand + override): checkpoint, config.json, metrics.jsonl, loss.png"

for method in pc em ode; do
  # each method with the settings it uses (a setting it does not use is refused)
  if [ "$method" = ode ]; then how=(sample.rtol=1e-3 sample.atol=1e-3); else how=(--steps 20); fi
  "$SG" sample toy --method "$method" -n 100 -o "s_$method" "${how[@]}"
  is_png "s_$method/samples.png" || fail "samples.png ($method)"
  [ -f "s_$method/samples.safetensors" ] || fail "samples.safetensors ($method)"
  [ "$(json_get "s_$method/sample.json" n)" = 100 ] || fail "sample.json ($method)"
done
ok "sample: pc, em and ode write samples, a picture and sample.json"

"$SG" likelihood toy -n 50 --grid 8 likelihood.rtol=1e-3 likelihood.atol=1e-3 likelihood.elbo_draws=2
is_png toy/density.png || fail "density.png"
nfe=$(json_get toy/likelihood.json probability_flow.nfe)
[ "$nfe" -gt 0 ] || fail "NFE"
python3 - toy/likelihood.json <<'PY' || fail "likelihood.json values"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["unit"] == "nats" and r["held_out"] == 50
for v in (r["probability_flow"]["nll"], r["elbo"]["nll_bound"], r["gaussian_fit"]["nll"]):
    assert math.isfinite(v)
assert r["elbo"]["std_error"] > 0
PY
ok "likelihood: nats with NFE $nfe, ELBO with a standard error, density.png"

"$SG" train -o digits --data digits data.test_size=97 data.train_size=200 --steps 3 --batch 16 \
  model.channels=8 model.groups=4 train.log_every=1
"$SG" sample digits -n 16 --steps 5
is_png digits/samples.png || fail "digits samples.png"
"$SG" likelihood digits -n 8 likelihood.rtol=1e-2 likelihood.atol=1e-2 likelihood.elbo_draws=1
[ "$(json_get digits/likelihood.json unit)" = "bits/dim" ] || fail "digits unit"
[ "$(json_get digits/likelihood.json probability_flow.trace)" = "hutchinson" ] || fail "trace"
ok "digits: U-Net train, sample grid, bits/dim with a Hutchinson trace"

"$SG" verify "exp" > verify.txt
grep -q "exp" verify.txt && grep -q "0 failed" verify.txt || fail "verify table"
set +e
"$SG" verify "no-such-row" > /dev/null 2>&1
[ $? -eq 2 ] || fail "verify with an empty selection must exit 2"
ok "verify prints the table and exits 0; an empty selection exits 2"
