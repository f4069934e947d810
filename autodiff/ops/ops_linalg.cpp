// Op table, linear algebra: batched matmul with broadcast batch axes. GEMM runs in the
// backend (Eigen on CPU, cuBLAS on CUDA); the rules are matmuls themselves.
#include "autodiff/ops/op_table.hpp"

namespace sg {
namespace {

Meta matmul_shape(std::span<const Tensor> in, const Attrs&) {
  const Tensor &a = in[0], &b = in[1];
  check_same_device("matmul", in);
  check_same_dtype("matmul", in);
  check_floating("matmul", a);
  if (a.rank() < 2 || b.rank() < 2)
    fail<ShapeError>("matmul: lhs ", a.shape().str(), " and rhs ", b.shape().str(),
                     ": both need rank >= 2");
  if (a.dim(-1) != b.dim(-2))
    fail<ShapeError>("matmul: lhs ", a.shape().str(), " and rhs ", b.shape().str(), ": lhs.dim(",
                     a.rank() - 1, ") must equal rhs.dim(", b.rank() - 2, ")");
  Shape ba = a.shape(), bb = b.shape();
  ba.resize(a.rank() - 2);
  bb.resize(b.rank() - 2);
  Shape out = broadcast_shapes(ba, bb, "matmul");
  out.push_back(a.dim(-2));
  out.push_back(b.dim(-1));
  return {out, a.dtype(), a.device()};
}

Tensor matmul_fwd(std::span<const Tensor> in, const Attrs&, const Meta& m) {
  Tensor out = fresh(m);
  if (out.numel() == 0) return out;
  auto operand = [&](const Tensor& t) {
    Shape s = m.shape;
    s[s.rank() - 2] = t.dim(-2);
    s[s.rank() - 1] = t.dim(-1);
    KView v = kview_broadcast(t, s);
    // Keep the matrix strides even for extent-1 axes (broadcast_strides zeroes them).
    v.strides[s.rank() - 2] = t.strides()[t.rank() - 2];
    v.strides[s.rank() - 1] = t.strides()[t.rank() - 1];
    return v;
  };
  // The backend needs each matrix with one unit stride; copy other layouts.
  auto usable = [](const Tensor& t) {
    const int64_t s0 = t.strides()[t.rank() - 2], s1 = t.strides()[t.rank() - 1];
    return (s1 == 1 && s0 >= std::max<int64_t>(t.dim(-1), 1)) ||
           (s0 == 1 && s1 >= std::max<int64_t>(t.dim(-2), 1));
  };
  const Tensor a = usable(in[0]) ? in[0] : contiguous(in[0].detach());
  const Tensor b = usable(in[1]) ? in[1] : contiguous(in[1].detach());
  backend_of(out).matmul(operand(a), operand(b), kview(out));
  return out;
}

const OpDef kOps[] = {
    // C = A B:  dA = g B^T, dB = A^T g;  dC = dA B + A dB
    {OpId::matmul, "matmul", 2, matmul_shape, matmul_fwd,
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 0 ? matmul(g, c.in[1].mT()) : matmul(c.in[0].mT(), g);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? matmul(t, c.in[1]) : matmul(c.in[0], t);
     }},
};

}  // namespace

std::span<const OpDef> linalg_ops() { return kOps; }

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.rank() == 0 || b.rank() == 0)
    fail<ShapeError>("matmul: lhs ", a.shape().str(), " and rhs ", b.shape().str(),
                     ": scalars cannot be multiplied");
  const bool va = a.rank() == 1, vb = b.rank() == 1;
  Tensor r = apply(OpId::matmul, {va ? unsqueeze(a, 0) : a, vb ? unsqueeze(b, 1) : b});
  if (vb) r = squeeze(r, -1);
  if (va) r = squeeze(r, -2 + (vb ? 1 : 0));
  return r;
}

}  // namespace sg
