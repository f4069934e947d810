# Shared by the end-to-end tests of the scoregrad command (sourced; not a test itself).
# Usage in a test: source "$(dirname "$0")/common.bash" "$@"   (argument: the scoregrad binary)
set -euo pipefail
SG=${1:?usage: $0 path/to/scoregrad}
NAME=$(basename "$0" .sh)
WORK=${SG_TEST_TMP:-/tmp/sg-cli-tests}/$NAME
rm -rf "$WORK" && mkdir -p "$WORK"
cd "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# A small, fast 2-D configuration shared by the tests.
TINY=(data.train_size=4000 data.test_size=200 model.hidden=32 model.layers=2 train.batch=128
      train.warmup=5 train.log_every=5)
# Checks that a file starts with the PNG signature.
is_png() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
# json_get FILE KEY.PATH: prints a value from a JSON file.
json_get() {
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"
}
# expect_config_error "fragment" command...: status 2 and a one-line error mentioning fragment.
expect_config_error() {
  local fragment=$1
  shift
  set +e
  "$@" > out.txt 2> err.txt
  local status=$?
  set -e
  [ $status -eq 2 ] || fail "$* exited $status (expected 2): $(cat err.txt)"
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "$*: error is not one line: $(cat err.txt)"
  grep -q -- "$fragment" err.txt || fail "$*: error does not mention $fragment: $(cat err.txt)"
  echo "ok: $(cat err.txt)"
}
# expect_status CODE command...: runs the command (errexit off) and fails unless it exits CODE.
expect_status() {
  local want=$1
  shift
  set +e
  "$@"
  local status=$?
  set -e
  [ $status -eq "$want" ] || fail "$* exited $status (expected $want)"
}
