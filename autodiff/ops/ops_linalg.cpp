// Op table, linear algebra: batched matmul with broadcast batch axes, and 2-D convolution with
// its two adjoints. GEMM runs in the backend (BLIS/Eigen on CPU, cuBLAS on CUDA), convolution
// too (oneDNN or im2col + GEMM); the rules are matmuls and convolutions themselves, so the three
// convolution ops are closed under differentiation and every order comes free.
#include "autodiff/backend/conv_geometry.hpp"
#include "autodiff/backend/gemm_layout.hpp"
#include "autodiff/ops/autocast.hpp"
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
  // The backend takes each matrix row- or column-major (the one rule, gemm_layout.hpp); other
  // layouts are copied here, once, so every backend sees usable operands.
  auto usable = [](const Tensor& t) {
    return gemm::operand_layout(t.dim(-2), t.dim(-1), t.strides()[t.rank() - 2],
                                t.strides()[t.rank() - 1])
        .ok;
  };
  const Tensor a = usable(in[0]) ? in[0] : contiguous(in[0].detach());
  const Tensor b = usable(in[1]) ? in[1] : contiguous(in[1].detach());
  backend_of(out).matmul(operand(a), operand(b), kview(out));
  return out;
}

// ---- convolution ----
// Attrs: a = {stride_h, stride_w, pad_h, pad_w}; b = the spatial extent the op cannot infer
// (conv_transpose2d: the input's {H, W}; conv2d_weight_grad: the kernel's {kh, kw}).
const char* conv_name(OpId id) {
  return id == OpId::conv2d             ? "conv2d"
         : id == OpId::conv_transpose2d ? "conv_transpose2d"
                                        : "conv2d_weight_grad";
}

// The geometry of the forward convolution behind any of the three ops (checked).
ConvGeom conv_geom(OpId id, std::span<const Tensor> in, const Attrs& at) {
  const char* name = conv_name(id);
  check_same_device(name, in);
  check_same_dtype(name, in);
  check_floating(name, in[0]);
  const Tensor &a = in[0], &b = in[1];
  if (a.rank() != 4 || b.rank() != 4)
    fail<ShapeError>(name, ": operands ", describe(a), " and ", describe(b), " must have rank 4");
  ConvGeom g;
  g.sh = at.a[0], g.sw = at.a[1], g.ph = at.a[2], g.pw = at.a[3];
  if (g.sh < 1 || g.sw < 1 || g.ph < 0 || g.pw < 0)
    fail<ValueError>(name, ": stride ", g.sh, "x", g.sw, " must be >= 1 and padding ", g.ph, "x",
                     g.pw, " >= 0");
  if (id == OpId::conv2d) {  // (x, w)
    g.N = a.dim(0), g.C = a.dim(1), g.H = a.dim(2), g.W = a.dim(3);
    g.O = b.dim(0), g.kh = b.dim(2), g.kw = b.dim(3);
    if (b.dim(1) != g.C)
      fail<ShapeError>(name, ": input ", describe(a), " has ", g.C, " channels but weight ",
                       describe(b), " expects ", b.dim(1));
  } else if (id == OpId::conv_transpose2d) {  // (g, w) onto an input of extent b
    g.N = a.dim(0), g.O = b.dim(0), g.C = b.dim(1), g.kh = b.dim(2), g.kw = b.dim(3);
    g.H = at.b[0], g.W = at.b[1];
    if (a.dim(1) != g.O)
      fail<ShapeError>(name, ": input ", describe(a), " has ", a.dim(1), " channels but weight ",
                       describe(b), " has ", g.O, " output channels");
  } else {  // (x, g) for a kernel of extent b
    g.N = a.dim(0), g.C = a.dim(1), g.H = a.dim(2), g.W = a.dim(3);
    g.O = b.dim(1), g.kh = at.b[0], g.kw = at.b[1];
    if (b.dim(0) != g.N)
      fail<ShapeError>(name, ": input ", describe(a), " and output gradient ", describe(b),
                       " have different batch sizes");
  }
  g.Ho = conv_out_extent(g.H, g.kh, g.sh, g.ph);
  g.Wo = conv_out_extent(g.W, g.kw, g.sw, g.pw);
  if (g.kh < 1 || g.kw < 1 || g.Ho < 1 || g.Wo < 1)
    fail<ShapeError>(name, ": kernel ", g.kh, "x", g.kw, " does not fit the input ", g.H, "x", g.W,
                     " padded by ", g.ph, "x", g.pw);
  const Tensor& y = id == OpId::conv_transpose2d ? a : b;  // the output (gradient), if an operand
  if (id != OpId::conv2d && (y.dim(2) != g.Ho || y.dim(3) != g.Wo))
    fail<ShapeError>(name, ": output gradient ", describe(y), " does not match the ", g.Ho, "x",
                     g.Wo, " output of a ", g.kh, "x", g.kw, " kernel over ", g.H, "x", g.W,
                     " (stride ", g.sh, "x", g.sw, ", padding ", g.ph, "x", g.pw, ")");
  return g;
}

template <OpId id>
Meta conv_shape(std::span<const Tensor> in, const Attrs& at) {
  const ConvGeom g = conv_geom(id, in, at);
  const Shape s = id == OpId::conv2d             ? Shape{g.N, g.O, g.Ho, g.Wo}
                  : id == OpId::conv_transpose2d ? Shape{g.N, g.C, g.H, g.W}
                                                 : Shape{g.O, g.C, g.kh, g.kw};
  return {s, in[0].dtype(), in[0].device()};
}

template <OpId id>
Tensor conv_fwd(std::span<const Tensor> in, const Attrs& at, const Meta& m) {
  const ConvGeom g = conv_geom(id, in, at);
  Tensor out = fresh(m);
  if (out.numel() == 0) return out;
  Backend& be = backend_of(out);
  if (g.N == 0 || g.C == 0 || g.O == 0) {  // an empty sum
    be.fill(kview(out), 0.0);
    return out;
  }
  const Tensor a = contiguous(in[0].detach()), b = contiguous(in[1].detach());
  const ConvPass pass = id == OpId::conv2d             ? ConvPass::forward
                        : id == OpId::conv_transpose2d ? ConvPass::input_grad
                                                       : ConvPass::weight_grad;
  be.conv2d(pass, g, kview(a), kview(b), kview(out));
  return out;
}

// The matmul primitive on rank >= 2 operands, without autocast (rules use it: a backward pass
// keeps its forward's dtypes).
Tensor matmul_op(const Tensor& a, const Tensor& b) { return apply(OpId::matmul, {a, b}); }

// The three ops in terms of each other, with the attributes of the op being differentiated.
Tensor conv_op(OpId id, const Tensor& a, const Tensor& b, const Attrs& at, Shape extent = {}) {
  Attrs next;
  next.a = at.a;
  next.b = extent;
  return apply(id, {a, b}, next);
}
Shape input_extent(const Tensor& x) { return {x.dim(2), x.dim(3)}; }
Shape kernel_extent(const Tensor& w) { return {w.dim(2), w.dim(3)}; }

const OpDef kOps[] = {
    // C = A B:  dA = g B^T, dB = A^T g;  dC = dA B + A dB
    {OpId::matmul, "matmul", 2, matmul_shape, matmul_fwd,
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 0 ? matmul_op(g, c.in[1].mT()) : matmul_op(c.in[0].mT(), g);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? matmul_op(t, c.in[1]) : matmul_op(c.in[0], t);
     }},
    // y = conv(x, w):  dx = conv_transpose(g, w), dw = weight_grad(x, g);  dy = conv(dx, w) +
    // conv(x, dw)
    {OpId::conv2d, "conv2d", 2, conv_shape<OpId::conv2d>, conv_fwd<OpId::conv2d>,
     [](const RuleCtx& c, int i, const Tensor& g) {
       return i == 0
                  ? conv_op(OpId::conv_transpose2d, g, c.in[1], c.attrs, input_extent(c.in[0]))
                  : conv_op(OpId::conv2d_weight_grad, c.in[0], g, c.attrs, kernel_extent(c.in[1]));
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? conv_op(OpId::conv2d, t, c.in[1], c.attrs)
                     : conv_op(OpId::conv2d, c.in[0], t, c.attrs);
     }},
    // z = conv_transpose(g, w), the adjoint of conv in x:  dg = conv(d, w), dw = weight_grad(d, g)
    {OpId::conv_transpose2d, "conv_transpose2d", 2, conv_shape<OpId::conv_transpose2d>,
     conv_fwd<OpId::conv_transpose2d>,
     [](const RuleCtx& c, int i, const Tensor& d) {
       return i == 0
                  ? conv_op(OpId::conv2d, d, c.in[1], c.attrs)
                  : conv_op(OpId::conv2d_weight_grad, d, c.in[0], c.attrs, kernel_extent(c.in[1]));
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? conv_op(OpId::conv_transpose2d, t, c.in[1], c.attrs, c.attrs.b)
                     : conv_op(OpId::conv_transpose2d, c.in[0], t, c.attrs, c.attrs.b);
     }},
    // v = weight_grad(x, g), the adjoint of conv in w:  dx = conv_transpose(g, d), dg = conv(x, d)
    {OpId::conv2d_weight_grad, "conv2d_weight_grad", 2, conv_shape<OpId::conv2d_weight_grad>,
     conv_fwd<OpId::conv2d_weight_grad>,
     [](const RuleCtx& c, int i, const Tensor& d) {
       return i == 0 ? conv_op(OpId::conv_transpose2d, c.in[1], d, c.attrs, input_extent(c.in[0]))
                     : conv_op(OpId::conv2d, c.in[0], d, c.attrs);
     },
     [](const RuleCtx& c, int i, const Tensor& t) {
       return i == 0 ? conv_op(OpId::conv2d_weight_grad, t, c.in[1], c.attrs, c.attrs.b)
                     : conv_op(OpId::conv2d_weight_grad, c.in[0], t, c.attrs, c.attrs.b);
     }},
};

}  // namespace

std::span<const OpDef> linalg_ops() { return kOps; }

// Under autocast (autocast.hpp) float32 operands of matmul and the convolutions become half.
Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = detail::autocast_to_half(a_in), b = detail::autocast_to_half(b_in);
  if (a.rank() == 0 || b.rank() == 0)
    fail<ShapeError>("matmul: lhs ", a.shape().str(), " and rhs ", b.shape().str(),
                     ": scalars cannot be multiplied");
  const bool va = a.rank() == 1, vb = b.rank() == 1;
  Tensor r = apply(OpId::matmul, {va ? unsqueeze(a, 0) : a, vb ? unsqueeze(b, 1) : b});
  if (vb) r = squeeze(r, -1);
  if (va) r = squeeze(r, -2 + (vb ? 1 : 0));
  return r;
}

Tensor conv2d(const Tensor& x, const Tensor& w, int64_t stride, int64_t padding) {
  return conv_op(OpId::conv2d, detail::autocast_to_half(x), detail::autocast_to_half(w),
                 Attrs{.a = {stride, stride, padding, padding}});
}
Tensor conv_transpose2d(const Tensor& g, const Tensor& w, int64_t stride, int64_t padding,
                        int64_t height, int64_t width) {
  return conv_op(OpId::conv_transpose2d, detail::autocast_to_half(g), detail::autocast_to_half(w),
                 Attrs{.a = {stride, stride, padding, padding}}, {height, width});
}
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& g, int64_t kernel_h, int64_t kernel_w,
                          int64_t stride, int64_t padding) {
  return conv_op(OpId::conv2d_weight_grad, x, g, Attrs{.a = {stride, stride, padding, padding}},
                 {kernel_h, kernel_w});
}

}  // namespace sg
