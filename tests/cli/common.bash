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
