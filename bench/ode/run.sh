#!/usr/bin/env bash
# The ODE work-precision benchmark (issue 14 item 8), run by `scripts/bench ode [--quick]`:
# scoregrad (bench/ode/work_precision.cpp) against scipy's solve_ivp and torchdiffeq
# (bench/compare/ode_work_precision.py) on Arenstorf, Pleiades and a neural ODE; writes
# docs/images/ode_work_precision.{json,png} and the generated block of docs/benchmarks.md's
# "ODE work-precision" section (bench/ode/report.py).
#
#   --quick              whole decades of tolerance and the faster of two calls as the time
#                        (instead of half decades and the minimum of 3 repeats of >= 0.2 s)
# Environment:
#   THREADS=N            threads for every system (default 1), each process pinned with taskset
#   SG_BUILD_DIR         build directory (default build-wp)
#   SG_BENCH_SKIP_INSTALL=1   do not pip install bench/ode/requirements.txt
#   SG_WP_OUT            where the JSON, plot and report go (default docs/ and docs/images/)
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for this command only (numpy's BLAS is barely
# used here: the states are at most 64 numbers); the report records nothing else about them.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-1}
BUILD=${SG_BUILD_DIR:-build-wp}
QUICK=()
[[ ${1:-} == --quick ]] && QUICK=(--quick)
OUT=${SG_WP_OUT:-docs}
PY=python3
if [[ -z ${SG_BENCH_SKIP_INSTALL:-} ]]; then
  $PY -m pip install --quiet -r bench/ode/requirements.txt >&2
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
nice cmake --build "$BUILD" --target sg_ode_work_precision -j2 >&2
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
PIN=(taskset -c "0-$((THREADS - 1))")
TMP=$BUILD/ode_wp
mkdir -p "$TMP" "$OUT/images"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"${PIN[@]}" "$BUILD/bench/sg_ode_work_precision" "${QUICK[@]}" --threads="$THREADS" --out="$TMP/scoregrad.json"
"${PIN[@]}" $PY bench/compare/ode_work_precision.py "$TMP/scoregrad.json" "$OUT/images/ode_work_precision.json" \
  --threads "$THREADS" "${QUICK[@]}"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD)
[[ -n $(git status --porcelain -- sde autodiff bench/ode bench/compare/ode_work_precision.py) ]] && commit="$commit (+ uncommitted changes)"
$PY bench/ode/report.py "$OUT/images/ode_work_precision.json" "$OUT/benchmarks.md" "$OUT/images/ode_work_precision.png" \
  --summary "$TMP/summary.json" --commit "$commit" --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  --load "$load_before (before), $load_after (after)" \
  --command "THREADS=$THREADS scripts/bench ode${QUICK:+ --quick}"
