#!/usr/bin/env bash
# Builds bench/gemm_candidates.cpp and runs the GEMM library comparison (Eigen, OpenBLAS, BLIS, oneDNN; 2 threads).
# Needs: apt-get install -y libblis-dev libdnnl-dev libopenblas-dev libeigen3-dev
# Usage: bench/gemm_candidates.sh [output.md] [options for every run, e.g. --sweeps 1 --shapes score]
# Optional extra run: OpenBLAS's OpenMP build, swapped in through LD_LIBRARY_PATH when its directory
# exists (OPENBLAS_OPENMP_DIR, default the one libopenblas0-openmp installs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build-gemm/gemm_candidates.md}; shift || true
LIB=/usr/lib/x86_64-linux-gnu
OMP_OB=${OPENBLAS_OPENMP_DIR:-$LIB/openblas-openmp}
mkdir -p build-gemm "$(dirname "$OUT")"
g++ -O3 -march=native -fopenmp -std=c++20 bench/gemm_candidates.cpp -o build-gemm/gemm_candidates \
  -I/usr/include/eigen3 -I/usr/include/x86_64-linux-gnu/openblas-pthread -I/usr/include/x86_64-linux-gnu/blis-openmp \
  $LIB/openblas-pthread/libopenblas.so $LIB/blis-openmp/libblis.so -ldnnl \
  -Wl,-rpath,$LIB/openblas-pthread:$LIB/blis-openmp
{
  # Main run: all candidates, environment as inherited.
  ./build-gemm/gemm_candidates "$@"
  # Extra rows: OpenBLAS alone with its tuning variables removed, and with the CI setting forced.
  echo; env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./build-gemm/gemm_candidates --only OpenBLAS --wait-budget 900 \
    --label "OpenBLAS only, env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" "$@"
  echo; env OPENBLAS_CORETYPE=Haswell ./build-gemm/gemm_candidates --only OpenBLAS --wait-budget 900 \
    --label "OpenBLAS only, OPENBLAS_CORETYPE=Haswell (CI setting)" "$@"
  if [ -e "$OMP_OB/libopenblas.so.0" ]; then
    echo; env LD_LIBRARY_PATH="$OMP_OB" ./build-gemm/gemm_candidates --only OpenBLAS,BLIS --wait-budget 900 \
      --label "OpenBLAS OpenMP build ($OMP_OB) and BLIS" "$@"
  fi
} | tee "$OUT"
