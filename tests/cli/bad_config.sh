# Bad configuration gives a one-line error naming the key and exit status 2, never a crash.
source "$(dirname "$0")/common.bash" "$@"

expect_config_error "train.stpes" "$SG" train -o r train.stpes=10
expect_config_error "'train.steps' expects an integer" "$SG" train -o r train.steps=ten
expect_config_error "'train.steps' expects an integer" "$SG" train -o r --steps 1.5
expect_config_error "'data.name'" "$SG" train -o r --data nosuchdata
expect_config_error "'data.path'" "$SG" train -o r --data digits data.test_size=97 data.path=/nonexistent.csv
expect_config_error "'objective.name'" "$SG" train -o r --objective nosuchobjective "${TINY[@]}"
expect_config_error "'sde.name'" "$SG" train -o r --sde vpp "${TINY[@]}"
echo '{"train": {"lr": "fast"}}' > bad.json
expect_config_error "'train.lr' expects a number" "$SG" train -o r -c bad.json
printf 'model:\n  widht: 3\n' > bad.yaml
expect_config_error "model.widht" "$SG" train -o r -c bad.yaml
expect_config_error "cannot read" "$SG" train -o r -c /nonexistent/config.yaml
[ -f r/checkpoint.safetensors ] && fail "a failed configuration wrote a checkpoint"
"$SG" train -o r --steps 0 "${TINY[@]}" 2> /dev/null
expect_config_error "'sample.method'" "$SG" sample r sample.method=magic
expect_config_error "'likelihood.trace'" "$SG" likelihood r --trace sometimes
set +e
"$SG" sample /nonexistent/run > /dev/null 2> err.txt
status=$?
set -e
[ $status -eq 1 ] && grep -q "no checkpoint" err.txt || fail "missing checkpoint: $status $(cat err.txt)"
ok "missing checkpoint: $(cat err.txt)"
