# Interrupting a run and resuming it gives a checkpoint byte-identical to an uninterrupted
# run's (parameters, Adam moments, EMA, generator, loader position, step); a kill during a
# checkpoint write leaves the previous checkpoint loadable.
source "$(dirname "$0")/common.bash" "$@"
ARGS=(--steps 40 train.checkpoint_every=10 "${TINY[@]}")

"$SG" train -o straight "${ARGS[@]}" 2> /dev/null

# 1. Killed (SIGKILL) after step 25: between checkpoints 20 and 30.
set +e
SG_CLI_KILL_AFTER_STEP=25 "$SG" train -o killed "${ARGS[@]}" 2> /dev/null
status=$?
set -e
[ $status -eq 137 ] || fail "expected death by SIGKILL (137), got $status"
"$SG" train -o killed --resume "${ARGS[@]}" 2> resume.log
grep -q "at step 20" resume.log || fail "did not resume at step 20: $(cat resume.log)"
cmp straight/checkpoint.safetensors killed/checkpoint.safetensors ||
  fail "resumed checkpoint differs from the uninterrupted one"
[ "$(wc -l < killed/metrics.jsonl)" -eq "$(wc -l < straight/metrics.jsonl)" ] ||
  fail "metrics.jsonl has a different number of lines after resuming"
ok "kill -9 after step 25, resume from step 20: final checkpoint identical byte for byte"

# 2. Killed in the middle of writing the third checkpoint (step 30).
set +e
SG_CLI_CRASH_IN_SAVE=3 "$SG" train -o torn "${ARGS[@]}" 2> /dev/null
status=$?
set -e
[ $status -eq 137 ] || fail "expected death by SIGKILL (137), got $status"
ls -a torn | grep -q '^\.checkpoint\.safetensors\.tmp-' || fail "no torn temporary file left"
"$SG" sample torn -n 10 --steps 2 -o torn_sample > /dev/null 2>&1 ||
  fail "the previous checkpoint does not load"
"$SG" train -o torn --resume "${ARGS[@]}" 2> resume2.log
grep -q "at step 20" resume2.log || fail "did not resume at step 20: $(cat resume2.log)"
cmp straight/checkpoint.safetensors torn/checkpoint.safetensors ||
  fail "checkpoint after a torn write and resume differs"
ok "kill during the step-30 checkpoint write: step-20 checkpoint loads; resume is identical"

# 3. A real asynchronous kill -9 at whatever point the run has reached.
"$SG" train -o async --steps 400 train.checkpoint_every=10 "${TINY[@]}" 2> /dev/null &
pid=$!
for _ in $(seq 200); do
  [ -f async/checkpoint.safetensors ] && break
  sleep 0.05
done
kill -9 $pid 2> /dev/null || true
wait $pid 2> /dev/null || true
"$SG" train -o async --resume --steps 400 train.checkpoint_every=10 "${TINY[@]}" 2> async.log
"$SG" train -o async_straight --steps 400 train.checkpoint_every=10 "${TINY[@]}" 2> /dev/null
cmp async/checkpoint.safetensors async_straight/checkpoint.safetensors ||
  fail "asynchronously killed run differs after resume"
ok "asynchronous kill -9 ($(grep -o 'at step [0-9]*' async.log || echo 'after the run ended')), resumed: identical"

# 4. A configuration file that disagrees with the checkpoint is refused; one that agrees (apart
#    from train.steps) extends the run.
echo '{"model": {"embed_dim": 8}}' > other.json
set +e
"$SG" train -o straight --resume -c other.json "${ARGS[@]}" 2> refuse.log
status=$?
set -e
[ $status -eq 2 ] && grep -q "model.embed_dim" refuse.log || fail "resume with a different model: $(cat refuse.log)"
echo '{}' > same.json
"$SG" train -o straight --resume -c same.json "${ARGS[@]}" --steps 50 2> extend.log
grep -q "at step 40 of 50" extend.log || fail "extending the run: $(cat extend.log)"
ok "resume with a different model.embed_dim is refused, naming the key; --steps 50 extends the run"

# 4. Dropout draws from the training generator, which the checkpoint holds: a U-Net with
#    model.dropout resumes exactly too (it used to draw from a generator that no longer existed).
DROP=(--data digits data.test_size=97 data.train_size=64 --steps 6 --batch 8 model.channels=8
      model.groups=4 model.dropout=0.3 train.checkpoint_every=2 train.log_every=1)
"$SG" train -o drop_straight "${DROP[@]}" 2> /dev/null
set +e
SG_CLI_KILL_AFTER_STEP=3 "$SG" train -o drop_killed "${DROP[@]}" 2> /dev/null
status=$?
set -e
[ $status -eq 137 ] || fail "expected death by SIGKILL (137), got $status"
"$SG" train -o drop_killed --resume "${DROP[@]}" 2> /dev/null
cmp drop_straight/checkpoint.safetensors drop_killed/checkpoint.safetensors ||
  fail "a U-Net with dropout resumed differently"
ok "U-Net with dropout: kill -9 after step 3, resume: final checkpoint identical byte for byte"
