#!/usr/bin/env bash
# Installs the Debian packages scoregrad builds with, when any is missing (sourced by scripts/*).
# Pinned to Debian 12 (bookworm) versions: Eigen 3.4.0, Catch2 2.13.10, Google Benchmark 1.7.1,
# nlohmann-json 3.11.2, BLIS 0.9.0 (OpenMP build), oneDNN 2.6.3, CLI11 2.1.2, yaml-cpp 0.7.0, stb 2022-09-08.
sg_install_deps() {
  local pkgs=(cmake ninja-build g++ ccache libeigen3-dev catch2 libbenchmark-dev nlohmann-json3-dev zlib1g-dev
              libblis-openmp-dev libdnnl-dev libcli11-dev libyaml-cpp-dev libstb-dev)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "scoregrad: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # The checkpoint tests read and write safetensors files with Python's package when Python is
  # there (pinned; best effort: without them that test skips with a warning).
  if command -v python3 >/dev/null && ! python3 -c "import safetensors, numpy" 2>/dev/null; then
    python3 -m pip install -q "safetensors==0.4.5" "numpy==2.4.6" >/dev/null 2>&1 ||
      echo "scoregrad: could not install safetensors/numpy for the interop test (it will skip)"
  fi
}
