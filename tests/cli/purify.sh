# scoregrad purify end to end on a tiny configuration (configs/digits_purify.yaml, shrunk): the
# table's shape (4 rows: undefended PGD, purified transfer / BPDA+EOT / full-gradient+EOT; a
# clean column and one per epsilon), every accuracy and standard error finite and in [0, 1],
# checkpoints and picture in the run directory; a second run loading those checkpoints (--from)
# reproduces the table; the stand-in device gives the CPU's numbers; the other choices (cnn,
# energy score model, binary noise, l2, vote, 4x4 digits) run, one seed; every key set to another
# value changes the run (attack.clip_gradient=straight_through included: only the full-gradient
# row and the picture can change); bad configurations are
# refused with status 2 and one line naming the problem; the schema in docs/cli.md is the code's.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$(dirname "$0")/common.bash" "$@"
export OMP_NUM_THREADS=1
ARGS=(-c "$ROOT/configs/digits_purify.yaml" --seeds '[0,1]' -n 24 classifier.epochs=1
      score.steps=20 attack.steps=2 attack.eot=2 'attack.epsilons=[0.1,0.3]' purifier.max_iter=3
      purifier.copies=2)

"$SG" purify -o run "${ARGS[@]}" > run.out 2> run.err || fail "purify failed: $(cat run.err)"
python3 - run/results.json run/results.md << 'EOF2' || fail "results: $(cat run/results.json)"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["seeds"] == [0, 1] and r["n"] == 24 and r["epsilons"] == [0.1, 0.3], r
rows = r["rows"]
assert [x["name"] for x in rows] == ["undefended / PGD", "purified / transfer PGD",
    "purified / BPDA+EOT", "purified / full-gradient+EOT"], [x["name"] for x in rows]
def check(s):
    assert len(s["per_seed"]) == 2 and all(0 <= v <= 1 for v in s["per_seed"]), s
    assert math.isfinite(s["mean"]) and 0 <= s["mean"] <= 1, s
    assert math.isfinite(s["se"]) and 0 <= s["se"] <= 1, s
    sd = (sum((v - s["mean"]) ** 2 for v in s["per_seed"]) / 1) ** 0.5
    assert abs(s["se"] - sd / 2 ** 0.5) < 1e-12, s  # the standard error of the mean over seeds
for x in rows:
    check(x["clean"])
    assert [e["epsilon"] for e in x["robust"]] == [0.1, 0.3], x
    for e in x["robust"]: check(e)
    for agg in x.get("robust")[0].get("by_aggregation", {}).values(): check(agg)
assert rows[0]["clean"]["mean"] > 0.5, rows[0]  # the classifier learned something
md = [l for l in open(sys.argv[2]) if l.startswith("|")]
assert len(md) == 6 and all(l.count("|") == 5 for l in md), md  # header, rule, 4 rows; 4 columns
EOF2
for f in classifier_seed0 classifier_seed1 score_seed0 score_seed1; do
  [ -s "run/$f.safetensors" ] || fail "no run/$f.safetensors"
done
is_png run/purify.png || fail "purify.png is not a PNG"
grep -q "full-gradient+EOT" run.out || fail "the table is not printed: $(cat run.out)"
ok "2 seeds x 2 epsilons: 4 rows, clean + 2 columns, every accuracy and standard error in [0, 1]; checkpoints, results.md, purify.png"

"$SG" purify -o reloaded --from run "${ARGS[@]}" > /dev/null 2> reload.err ||
  fail "purify --from failed: $(cat reload.err)"
python3 -c 'import json,sys; a,b=(json.load(open(f))["rows"] for f in sys.argv[1:]); sys.exit(a!=b)' \
  run/results.json reloaded/results.json || fail "the table from loaded checkpoints differs"
cmp run/score_seed1.safetensors reloaded/score_seed1.safetensors || fail "checkpoint not copied"
ok "--from run: the loaded classifier and score model reproduce the table exactly"

"$SG" purify -o standin --device standin:1 "${ARGS[@]}" > /dev/null 2> standin.err ||
  fail "purify --device standin:1 failed: $(cat standin.err)"
python3 -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); sys.exit(a["rows"]!=b["rows"] or b["device"]!="standin:1")' \
  run/results.json standin/results.json || fail "the stand-in device's table differs from the CPU's"
ok "--device standin:1: the same table as the CPU"

# The other choices end to end, one seed (no standard error: null).
"$SG" purify -o variant "${ARGS[@]}" --seeds '[3]' classifier.kind=cnn classifier.channels=4 \
  score.energy=true purifier.noise=binary purifier.aggregation=vote attack.norm=l2 \
  'attack.epsilons=[0.5,2]' attack.random_start=false data.pool=2 > /dev/null 2> variant.err ||
  fail "the cnn / energy / binary / l2 / vote / pool 2 run failed: $(cat variant.err)"
python3 - variant/results.json << 'EOF2' || fail "variant results: $(cat variant/results.json)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["norm"] == "l2" and r["aggregation"] == "vote" and r["shape"] == [1, 4, 4], r
for x in r["rows"]:
    for s in [x["clean"]] + x["robust"]:
        assert s["se"] is None and len(s["per_seed"]) == 1 and 0 <= s["mean"] <= 1, s
    if "by_aggregation" in x["clean"]:
        assert x["clean"]["mean"] == x["clean"]["by_aggregation"]["vote"]["mean"], x
EOF2
ok "cnn classifier, energy score model, binary noise, l2 PGD, vote aggregation, 4x4 digits, one seed: standard errors null"

# Every key is honoured: set to another value (one seed), the run's results, picture or
# checkpoints change. (classifier.channels: with kind cnn; classifier.from, score.from: above.)
ONE=("${ARGS[@]}" --seeds '[0]')
signature() {  # results.json without its timing, the picture, the checkpoints
  python3 -c 'import json,sys,hashlib; r=json.load(open(sys.argv[1]+"/results.json")); r.pop("seconds")
h=hashlib.sha256(json.dumps(r,sort_keys=True).encode())
for f in ("purify.png","classifier_seed0.safetensors","score_seed0.safetensors"): h.update(open(sys.argv[1]+"/"+f,"rb").read())
print(h.hexdigest())' "$1"
}
# An entry "context|change" compares context + change with context alone (the tiny score model's
# steps sit at purifier.max_step unless lambda is small, where eta and min_step cannot show).
i=0
for kv in data.test_fraction=0.3 data.split_seed=2 data.n=20 data.pool=2 classifier.kind=cnn \
  'classifier.hidden=[16]' classifier.epochs=3 classifier.batch=32 classifier.lr=0.01 \
  score.hidden=64 score.layers=1 score.energy=true score.steps=21 score.batch=64 score.lr=0.002 \
  score.sigma_begin=3 score.sigma_end=0.05 score.levels=10 purifier.sigma_rand=0.1 \
  purifier.noise=binary purifier.lambda=0.001 'purifier.lambda=0.001|purifier.eta=1' \
  'purifier.lambda=0.001|purifier.min_step=0.01' purifier.max_step=0.01 \
  purifier.stopping_alpha=0.5 purifier.max_iter=5 purifier.copies=3 purifier.aggregation=logits \
  attack.norm=l2 'attack.epsilons=[0.1,0.2]' attack.steps=3 attack.step_scale=1 \
  attack.random_start=false attack.eot=3 attack.clip_gradient=straight_through 'seeds=[1]' 'classifier.kind=cnn|classifier.channels=8'; do
  i=$((i + 1))
  context=${kv%%|*} change=${kv#*|}
  [ "$context" = "$kv" ] && context=""
  ref=key-base
  [ -z "$context" ] || ref=key-$i-ref
  # shellcheck disable=SC2086
  { [ -e "$ref" ] || "$SG" purify -o "$ref" "${ONE[@]}" $context > /dev/null 2> "key-$i.err"; } &&
    "$SG" purify -o "key-$i" "${ONE[@]}" $context $change > /dev/null 2>> "key-$i.err" ||
    fail "$kv: $(cat "key-$i.err")"
  [ "$(signature "key-$i")" != "$(signature "$ref")" ] || fail "$kv changed nothing"
done
ok "each of $i keys set to another value changes the run (results, picture or checkpoints)"

# Bad input: status 2, one line naming the key.
expect_config_error "outside the data range" "$SG" purify -o bad "${ARGS[@]}" 'attack.epsilons=[0.1,1.5]'
expect_config_error "'attack.steps' = 0" "$SG" purify -o bad "${ARGS[@]}" attack.steps=0
expect_config_error "'score.steps' = 0" "$SG" purify -o bad "${ARGS[@]}" score.steps=0
expect_config_error "(0, 8]" "$SG" purify -o bad "${ARGS[@]}" attack.norm=l2 'attack.epsilons=[9]'
expect_config_error "'classifier.channels' = 32 is not used by classifier.kind = \"mlp\"" \
  "$SG" purify -o bad "${ARGS[@]}" classifier.channels=32
expect_config_error "unknown key 'attack.epsilon'" "$SG" purify -o bad "${ARGS[@]}" attack.epsilon=0.1
expect_config_error "'purifier.aggregation'" "$SG" purify -o bad "${ARGS[@]}" purifier.aggregation=mean
expect_config_error "'attack.clip_gradient'" "$SG" purify -o bad "${ARGS[@]}" attack.clip_gradient=identity
expect_config_error "'seeds' holds 1 twice" "$SG" purify -o bad "${ARGS[@]}" --seeds '[1,1]'
expect_config_error "--device" "$SG" purify -o bad "${ARGS[@]}" --device gpu
expect_config_error "'data.n' = 1000 exceeds the 449 held-out images" \
  "$SG" purify -o bad "${ARGS[@]}" -n 1000
"$SG" purify -o pooled "${ARGS[@]}" data.pool=2 > /dev/null 2>&1 || fail "data.pool=2 failed"
expect_config_error "trained on different data shapes" \
  "$SG" purify -o bad "${ARGS[@]}" data.pool=2 classifier.from=pooled score.from=run
expect_config_error "'classifier.epochs' = 3 differs from" \
  "$SG" purify -o bad "${ARGS[@]}" --from run classifier.epochs=3
[ ! -e bad ] || fail "a refused configuration wrote bad/"
set +e
"$SG" purify -o bad "${ARGS[@]}" --from nowhere > /dev/null 2> err.txt
status=$?
set -e
[ $status -eq 1 ] && grep -q "no classifier checkpoint at nowhere" err.txt ||
  fail "a missing checkpoint: status $status, $(cat err.txt)"
ok "missing checkpoint: status 1: $(cat err.txt)"

"$SG" purify --print-schema > schema.md
grep -qF -f <(head -3 schema.md) "$ROOT/docs/cli.md" &&
  python3 -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open(sys.argv[2]).read())' \
    schema.md "$ROOT/docs/cli.md" || fail "docs/cli.md does not show purify --print-schema"
ok "docs/cli.md shows the purify schema as the code has it"
