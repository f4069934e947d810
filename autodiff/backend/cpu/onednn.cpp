// oneDNN behind the CPU backend's float32 convolutions and GEMMs, and the bfloat16 ones (inputs
// bfloat16, float32 accumulation, one rounding on store; dnnl.hpp is large: only this file
// includes it). Each pass gets a oneDNN primitive that picks its own (blocked) memory formats;
// plain NCHW / OIHW tensors are reordered into and out of them. Primitives, reorders and the
// blocked buffers are built once per geometry and kept in a per-thread cache, so a training
// step pays only for execution, and two threads never share a scratch buffer.
#include "autodiff/backend/cpu/onednn.hpp"

#ifdef SG_WITH_DNNL
#include <dnnl.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <vector>
#endif

namespace sg::cpu {

#ifdef SG_WITH_DNNL
namespace {

using dnnl::memory;
using Tag = memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One operand of a pass: the caller's plain layout, the primitive's layout, and (when the two
// differ) a buffer in the primitive's layout with the reorder between them.
struct Operand {
  memory::desc user, prim;
  memory buffer;
  dnnl::reorder reorder;  // user -> prim for inputs, prim -> user for the output
  bool reordered = false;
};

struct Plan {
  dnnl::primitive prim;
  Operand in0, in1, out;
  int arg0 = 0, arg1 = 0, arg_out = 0;
};

Operand make_operand(const memory::desc& user, const memory::desc& prim, bool is_output) {
  Operand o{user, prim, {}, {}, false};
  if (user != prim) {
    o.buffer = memory(prim, cpu_engine());
    o.reordered = true;
    const memory u(user, cpu_engine(), DNNL_MEMORY_NONE);
    o.reorder = is_output ? dnnl::reorder(o.buffer, u) : dnnl::reorder(u, o.buffer);
  }
  return o;
}

memory::data_type dnnl_type(DType t) {
  return t == DType::bf16  ? memory::data_type::bf16
         : t == DType::f16 ? memory::data_type::f16
                           : memory::data_type::f32;
}

Plan make_plan(ConvPass pass, const ConvGeom& g, DType dtype) {
  const auto dt = dnnl_type(dtype);
  const memory::dims xd{g.N, g.C, g.H, g.W}, wd{g.O, g.C, g.kh, g.kw}, yd{g.N, g.O, g.Ho, g.Wo};
  const memory::dims strides{g.sh, g.sw}, pad_l{g.ph, g.pw},
      pad_r{(g.Ho - 1) * g.sh + g.kh - g.H - g.ph, (g.Wo - 1) * g.sw + g.kw - g.W - g.pw};
  // Tag::any lets each primitive choose; measured on the digits U-Net's shapes, the blocked
  // layouts it picks (with reorders) beat plain NCHW 2x and match NHWC.
  const memory::desc x_any(xd, dt, Tag::any), w_any(wd, dt, Tag::any), y_any(yd, dt, Tag::any);
  const memory::desc x_user(xd, dt, Tag::nchw), w_user(wd, dt, Tag::oihw),
      y_user(yd, dt, Tag::nchw);
  // convolution_auto lets oneDNN use Winograd F(4x4, 3x3) where it is faster (3x3, stride 1,
  // enough channels): 17% off the digits U-Net's 8x8 convolutions, within the float32 tests'
  // 2e-5 relative tolerance of direct loops.
  const auto algo =
      dtype == DType::f32 ? dnnl::algorithm::convolution_auto : dnnl::algorithm::convolution_direct;
  auto& eng = cpu_engine();
  const dnnl::convolution_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, algo, x_any, w_any, y_any, strides, pad_l, pad_r}, eng);
  Plan p;
  switch (pass) {
    case ConvPass::forward:
      p.prim = dnnl::convolution_forward(fwd);
      p.in0 = make_operand(x_user, fwd.src_desc(), false);
      p.in1 = make_operand(w_user, fwd.weights_desc(), false);
      p.out = make_operand(y_user, fwd.dst_desc(), true);
      p.arg0 = DNNL_ARG_SRC, p.arg1 = DNNL_ARG_WEIGHTS, p.arg_out = DNNL_ARG_DST;
      break;
    case ConvPass::input_grad: {
      const dnnl::convolution_backward_data::primitive_desc bwd(
          {algo, x_any, w_any, y_any, strides, pad_l, pad_r}, eng, fwd);
      p.prim = dnnl::convolution_backward_data(bwd);
      p.in0 = make_operand(y_user, bwd.diff_dst_desc(), false);
      p.in1 = make_operand(w_user, bwd.weights_desc(), false);
      p.out = make_operand(x_user, bwd.diff_src_desc(), true);
      p.arg0 = DNNL_ARG_DIFF_DST, p.arg1 = DNNL_ARG_WEIGHTS, p.arg_out = DNNL_ARG_DIFF_SRC;
      break;
    }
    case ConvPass::weight_grad: {
      const dnnl::convolution_backward_weights::primitive_desc bwd(
          {algo, x_any, w_any, y_any, strides, pad_l, pad_r}, eng, fwd);
      p.prim = dnnl::convolution_backward_weights(bwd);
      p.in0 = make_operand(x_user, bwd.src_desc(), false);
      p.in1 = make_operand(y_user, bwd.diff_dst_desc(), false);
      p.out = make_operand(w_user, bwd.diff_weights_desc(), true);
      p.arg0 = DNNL_ARG_SRC, p.arg1 = DNNL_ARG_DIFF_DST, p.arg_out = DNNL_ARG_DIFF_WEIGHTS;
      break;
    }
  }
  return p;
}

using Key = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t>;

constexpr std::size_t kMaxPlans = 256;

// The cached plan, or nullptr when oneDNN has no implementation for this geometry (remembered).
Plan* plan_for(ConvPass pass, const ConvGeom& g, DType dtype) {
  thread_local std::map<Key, std::optional<Plan>> cache;
  const Key key{static_cast<int>(pass),
                static_cast<int>(dtype),
                g.N,
                g.C,
                g.H,
                g.W,
                g.O,
                g.kh,
                g.kw,
                g.sh,
                g.sw,
                g.ph,
                g.pw};
  auto it = cache.find(key);
  if (it == cache.end()) {
    // Plans hold blocked copies of their operands: a run over many batch sizes starts afresh
    // rather than keep every one.
    if (cache.size() >= kMaxPlans) cache.clear();
    std::optional<Plan> plan;
    try {
      plan = make_plan(pass, g, dtype);
    } catch (const dnnl::error&) {
    }
    it = cache.emplace(key, std::move(plan)).first;
  }
  return it->second ? &*it->second : nullptr;
}

bool run_conv(ConvPass pass, const ConvGeom& g, DType dtype, const void* a, const void* b,
              void* out) {
  Plan* plan = plan_for(pass, g, dtype);
  if (!plan) return false;
  Plan& p = *plan;
  auto& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  // Wraps a caller's buffer; inputs in another layout are reordered into the plan's buffer.
  auto input = [&](Operand& o, const void* data) {
    memory user(o.user, eng, const_cast<void*>(data));
    if (!o.reordered) return user;
    o.reorder.execute(stream, user, o.buffer);
    return o.buffer;
  };
  memory user_out(p.out.user, eng, out);
  p.prim.execute(stream, {{p.arg0, input(p.in0, a)},
                          {p.arg1, input(p.in1, b)},
                          {p.arg_out, p.out.reordered ? p.out.buffer : user_out}});
  if (p.out.reordered) p.out.reorder.execute(stream, p.out.buffer, user_out);
  stream.wait();
  return true;
}

// A bfloat16 GEMM as oneDNN's matmul primitive over strided 2-D operands (float32 accumulation,
// the output rounded once), cached per shape and strides on each thread; nullptr when oneDNN has
// no implementation (remembered).
using GemmKey = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
dnnl::matmul* gemm_for(DType dtype, int64_t m, int64_t n, int64_t k, int64_t as0, int64_t as1,
                       int64_t bs0, int64_t bs1) {
  thread_local std::map<GemmKey, std::optional<dnnl::matmul>> cache;
  const GemmKey key{static_cast<int>(dtype), m, n, k, as0, as1, bs0, bs1};
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= kMaxPlans) cache.clear();
    std::optional<dnnl::matmul> prim;
    try {
      const auto dt = dnnl_type(dtype);
      const memory::desc a(memory::dims{m, k}, dt, memory::dims{as0, as1}),
          b(memory::dims{k, n}, dt, memory::dims{bs0, bs1}),
          c(memory::dims{m, n}, dt, memory::dims{n, 1});
      prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), cpu_engine()));
    } catch (const dnnl::error&) {
    }
    it = cache.emplace(key, std::move(prim)).first;
  }
  return it->second ? &*it->second : nullptr;
}

}  // namespace

bool dnnl_conv2d(ConvPass pass, const ConvGeom& g, const float* a, const float* b, float* out) {
  return run_conv(pass, g, DType::f32, a, b, out);
}

bool dnnl_conv2d_half(ConvPass pass, const ConvGeom& g, DType dtype, const void* a, const void* b,
                      void* out) {
  return dtype == DType::bf16 && run_conv(pass, g, dtype, a, b, out);
}

bool dnnl_gemm_half(DType dtype, int64_t m, int64_t n, int64_t k, const void* a, int64_t as0,
                    int64_t as1, const void* b, int64_t bs0, int64_t bs1, void* c) {
  if (dtype != DType::bf16 || std::min({m, n, k}) < 1) return false;
  dnnl::matmul* prim = gemm_for(dtype, m, n, k, as0, as1, bs0, bs1);
  if (!prim) return false;
  auto& eng = cpu_engine();
  thread_local dnnl::stream stream(eng);
  const auto dt = dnnl_type(dtype);
  const memory ma(memory::desc(memory::dims{m, k}, dt, memory::dims{as0, as1}), eng,
                  const_cast<void*>(a)),
      mb(memory::desc(memory::dims{k, n}, dt, memory::dims{bs0, bs1}), eng, const_cast<void*>(b)),
      mc(memory::desc(memory::dims{m, n}, dt, memory::dims{n, 1}), eng, c);
  prim->execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  stream.wait();
  return true;
}

bool dnnl_sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t as0, int64_t as1,
                const float* b, int64_t bs0, int64_t bs1, float* c) {
  // A row-major operand is 'N' with leading dimension its row stride; a column-major one 'T'.
  const auto op = [](int64_t s0, int64_t s1, int64_t rows, int64_t cols, int64_t& ld) {
    if (s1 == 1 && s0 >= std::max<int64_t>(cols, 1)) return ld = s0, 'N';
    if (s0 == 1 && s1 >= std::max<int64_t>(rows, 1)) return ld = s1, 'T';
    return ld = 0, '\0';
  };
  int64_t lda = 0, ldb = 0;
  const char ta = op(as0, as1, m, k, lda), tb = op(bs0, bs1, k, n, ldb);
  if (!ta || !tb) return false;
  return ::dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, std::max<int64_t>(n, 1)) ==
         dnnl_success;
}

#else

bool dnnl_conv2d(ConvPass, const ConvGeom&, const float*, const float*, float*) { return false; }
bool dnnl_conv2d_half(ConvPass, const ConvGeom&, DType, const void*, const void*, void*) {
  return false;
}
bool dnnl_gemm_half(DType, int64_t, int64_t, int64_t, const void*, int64_t, int64_t, const void*,
                    int64_t, int64_t, void*) {
  return false;
}
bool dnnl_sgemm(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                int64_t, float*) {
  return false;
}

#endif

}  // namespace sg::cpu
