// The seam between the side-by-side benchmark's translation units: bench_compare.cpp (the
// driver), sg_workloads.cpp (scoregrad's side and the problems) and torch/torch_workloads.cpp
// (LibTorch's side). Only plain host data crosses it, so no file includes both scoregrad's and
// LibTorch's headers.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sgb {

// A dense row-major array; f64 says which dtype the frameworks compute in.
struct Host {
  std::vector<int64_t> shape;
  std::vector<double> data;
  bool f64 = false;
};
// A workload's problem (names: "p.<param>" trainable parameters, "b.<buffer>" buffers, anything
// else an input) or its results ("loss", "grad.<param>", ...; "nfe*" are counters, not checked).
using HostMap = std::map<std::string, Host>;

class Workload {
 public:
  virtual ~Workload() = default;
  virtual void run() = 0;         // the timed unit
  virtual HostMap outputs() = 0;  // one run's results, for the agreement check
};

// Every workload, in report order: op_chain, mlp_dsm, mlp_ssm, mlp_ssm_vr, mlp_ism_d2,
// mlp_ism_d16, mlp_fd_ssm, mlp_grad_x, mlp_hvp_x, gemm_f32/<n>, gemm_f64/<n>, unet_dsm, cnf_*.
std::vector<std::string> workload_names();
// The weights and inputs of a workload, from fixed seeds (built with scoregrad).
HostMap make_problem(const std::string& name);
// scoregrad's implementation of a workload.
std::unique_ptr<Workload> make_scoregrad(const std::string& name, const HostMap& problem);
// Writes dir/<name>.safetensors: the problem and scoregrad's outputs as "ref.<key>".
void export_problem(const std::string& dir, const std::string& name, const HostMap& problem,
                    const HostMap& reference);

// LibTorch's side (torch/torch_workloads.cpp; only linked when SG_BENCH_TORCH is on).
namespace libtorch {
std::string version();
void set_threads(int n);
// nullptr when LibTorch has no counterpart (the CNF workloads: no ODE solver in LibTorch).
std::unique_ptr<Workload> make(const std::string& name, const HostMap& problem);
}  // namespace libtorch

}  // namespace sgb
