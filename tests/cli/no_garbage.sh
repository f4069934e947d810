# The command never writes or reports garbage with exit status 0: few sampling steps give finite
# samples; non-finite samples, weights or figures are errors that keep the last good checkpoint;
# a checkpoint at an impossible step is refused; usage errors exit 2; running out of memory says
# what was being done; likelihood reports the samples' MMD^2 beside the Gaussian's.
source "$(dirname "$0")/common.bash" "$@"

expect_status() {  # expect_status STATUS "fragment" command...
  local want=$1 fragment=$2
  shift 2
  set +e
  "$@" > out.txt 2> err.txt
  local status=$?
  set -e
  [ $status -eq "$want" ] || fail "$* exited $status (expected $want): $(cat err.txt)"
  grep -q -- "$fragment" err.txt || fail "$*: stderr does not mention $fragment: $(cat err.txt)"
  echo "ok ($status): $(grep -- "$fragment" err.txt | head -1)"
}
# ckpt FILE step N | ckpt FILE fill PREFIX VALUE: rewrites a checkpoint's step, or every float32
# element of the tensors whose names start with PREFIX.
ckpt() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, what = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header, data = json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])
if what == "step":
    header["__metadata__"]["step"] = sys.argv[3]
else:
    prefix, value = sys.argv[3], float(sys.argv[4])
    for name, t in header.items():
        if name.startswith(prefix) and t["dtype"] == "F32":
            b, e = t["data_offsets"]
            data[b:e] = struct.pack("<%df" % ((e - b) // 4), *[value] * ((e - b) // 4))
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
PY
}
all_finite() {  # all_finite FILE.json KEY...: every value finite
  python3 - "$@" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    v = r
    for k in key.split("."): v = v[k]
    assert isinstance(v, (int, float)) and math.isfinite(v), f"{key} = {v}"
PY
}

# ---- sampling with few steps (pc on VP: the corrector's step size was negative below 20) ----
"$SG" train -o r --steps 20 "${TINY[@]}" 2> /dev/null
for steps in 1 2 5 10 19; do
  "$SG" sample r --steps "$steps" -n 200 -o "s$steps" > out.txt
  grep -qi nan out.txt && fail "sample --steps $steps printed NaN: $(cat out.txt)"
  all_finite "s$steps/sample.json" mmd2.model mmd2.gaussian_fit ||
    fail "sample --steps $steps: non-finite MMD"
done
ok "pc sampling with 1 to 19 steps gives finite samples and MMD"
expect_status 2 "sample.steps" "$SG" sample r --steps 0

# ---- usage errors are exit 2 with CLI11's message ----
expect_status 2 "run is required" "$SG" sample
expect_status 2 "--bogus" "$SG" train --bogus
expect_status 2 "usage error" "$SG" train -o r --steps
expect_status 2 "usage error" "$SG" nosuchcommand

# ---- out of memory names what was being done ----
if (ulimit -v 3000000 && "$SG" sample r -n 10 --steps 2 -o small > /dev/null 2>&1); then
  expect_status 1 "out of memory while sampling 1073741824 examples" \
    bash -c "ulimit -v 3000000; exec \"$SG\" sample r -n 1073741824 --steps 2 -o huge"
  [ -e huge/samples.safetensors ] && fail "an out-of-memory run wrote samples"
else
  echo "skipped: the out-of-memory check (this build does not run under ulimit -v)"
fi

# ---- non-finite samples are an error; nothing is written ----
cp -r r big
ckpt big/checkpoint.safetensors fill ema.shadow.mlp 1e30
ckpt big/checkpoint.safetensors fill model.mlp 1e30
expect_status 1 "not finite" "$SG" sample big -n 100 --steps 5 -o big_out
[ -e big_out/samples.safetensors ] || [ -e big_out/sample.json ] &&
  fail "non-finite samples were written"
ok "non-finite samples: exit 1, nothing written"

# ---- a blow-up on the final step: exit 1, nothing non-finite saved, last good checkpoint kept --
SG_CLI_NAN_AFTER_STEP=20 expect_status 1 "not finite after step 20" \
  "$SG" train -o blow --steps 20 train.checkpoint_every=5 train.grad_clip=0 "${TINY[@]}"
grep -q "checkpoint of step 15 is kept" err.txt || fail "the message does not name the kept step"
"$SG" train -o blow --resume 2> resume.txt || fail "resume after a blow-up: $(cat resume.txt)"
grep -q "resuming blow at step 15" resume.txt || fail "did not resume at step 15: $(cat resume.txt)"
ok "a NaN after the last step: exit 1, the step-15 checkpoint survives and resumes"
SG_CLI_NAN_AFTER_STEP=3 expect_status 1 "nothing was saved" \
  "$SG" train -o blow2 --steps 3 "${TINY[@]}"
[ -e blow2/checkpoint.safetensors ] && fail "a NaN run wrote a checkpoint"

# ---- a checkpoint at an impossible step is refused ----
cp -r r neg && ckpt neg/checkpoint.safetensors step -5
expect_status 1 "step -5" "$SG" train -o neg --resume
expect_status 1 "step -5" "$SG" sample neg -n 10 --steps 2
cp -r r far && ckpt far/checkpoint.safetensors step 30
expect_status 2 "beyond configuration key 'train.steps' = 20" "$SG" train -o far --resume
expect_status 1 "step 30" "$SG" sample far -n 10 --steps 2

# ---- likelihood reports the samples' MMD^2 beside the Gaussian's and says when worse ----
"$SG" likelihood r -n 200 --grid 0 likelihood.rtol=1e-3 likelihood.atol=1e-3 \
  likelihood.elbo_draws=1 sample.steps=50 > lik.txt
cat lik.txt
grep -q "samples (pc): MMD^2 to held-out data" lik.txt || fail "no sample MMD in likelihood"
grep -q "WARNING: the model's samples are further from held-out data" lik.txt ||
  fail "a 20-step model's samples are worse than the Gaussian's, and likelihood did not say so"
python3 - r/likelihood.json <<'PY' || fail "likelihood.json samples"
import json, sys
s = json.load(open(sys.argv[1]))["samples"]
assert s["worse_than_gaussian"] is True and s["mmd2"]["model"] > s["mmd2"]["gaussian_fit"]
PY
ok "likelihood: sample MMD^2 beside the Gaussian's, flagged when worse"
