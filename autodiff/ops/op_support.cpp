// The op table itself (assembled from the family blocks, checked complete), the helpers that
// forward functions share, tensor creation, and the Tensor member conveniences.
#include <array>
#include <cstring>
#include <new>

#include "autodiff/ops/op_table.hpp"
#ifdef SG_WITH_CUDA
#include "autodiff/backend/cuda/cuda_backend.hpp"
#endif
#include "autodiff/tape/tape.hpp"

namespace sg {

namespace {
struct Table {
  std::array<const OpDef*, kOpCount> rows{};
  Table() {
    for (auto family :
         {elementwise_ops(), reduce_ops(), linalg_ops(), shape_ops(), index_ops(), custom_ops()})
      for (const OpDef& d : family) {
        const int i = static_cast<int>(d.id);
        if (rows[i]) throw std::logic_error(cat("op table: two rows for ", d.name));
        rows[i] = &d;
      }
    for (int i = 0; i < kOpCount; ++i)
      if (!rows[i]) throw std::logic_error(cat("op table: no row for op id ", i));
  }
};
}  // namespace

const OpDef& op_def(OpId id) {
  static const Table table;
  return *table.rows[static_cast<int>(id)];
}

Tensor no_grad_rule(const RuleCtx&, int, const Tensor&) { return {}; }

// ---- helpers ---------------------------------------------------------------------------------
Backend* g_cuda_backend = nullptr;
void register_cuda_backend(Backend* b) { g_cuda_backend = b; }
Backend& backend_for(Device d) {
  if (d.type == DeviceType::cpu) return cpu_backend();
  if (d.type == DeviceType::standin) return standin_backend(d.index);
#ifdef SG_WITH_CUDA
  return cuda::backend(d.index);  // constructed (and registered) on first use
#endif
  if (!g_cuda_backend)
    fail<DeviceError>("device ", device_name(d), " requested but scoregrad was built without CUDA");
  return *g_cuda_backend;
}
Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

// Device pointers: kernels of the tensor's own backend are the only readers.
KView kview(const Tensor& t) { return {t.impl()->data_ptr(), t.shape(), t.strides(), t.dtype()}; }
KView kview_broadcast(const Tensor& t, const Shape& to) {
  return {t.impl()->data_ptr(), to, broadcast_strides(t.shape(), t.strides(), to), t.dtype()};
}
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  return Tensor(new TensorImpl(base.storage(), shape, strides, offset, base.dtype()));
}
void detail::fail_host_access(const Tensor& t, const char* what) {
  fail<DeviceError>(what, ": ", describe(t),
                    " is not in host memory; copy it first with to(Device::cpu())");
}
std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return cat(dtype_name(t.dtype()), t.shape().str(),
             t.device().type == DeviceType::cpu ? "" : " on " + device_name(t.device()));
}
void check_same_device(const char* op, std::span<const Tensor> in) {
  for (const Tensor& t : in)
    if (!(t.device() == in[0].device())) {
      std::string all;
      for (const Tensor& x : in)
        all += (all.empty() ? "" : ", ") + describe(x) + (x.device().is_cpu() ? " on cpu" : "");
      fail<DeviceError>(op, ": inputs are on different devices (", all, ")");
    }
}
void check_same_dtype(const char* op, std::span<const Tensor> in) {
  for (const Tensor& t : in)
    if (t.dtype() != in[0].dtype()) {
      std::string all;
      for (const Tensor& x : in) all += (all.empty() ? "" : " and ") + describe(x);
      fail<DTypeError>(op, ": mixed dtypes ", all, "; cast one explicitly");
    }
}
std::vector<Tensor> promote_halves(std::span<const Tensor> in) {
  std::vector<Tensor> out(in.begin(), in.end());
  bool half = false, mixed = false;
  for (const Tensor& t : in) {
    if (!t.defined() || !is_floating(t.dtype())) return out;  // the op reports it
    half |= is_half(t.dtype());
    mixed |= t.dtype() != in[0].dtype();
  }
  if (!half || !mixed) return out;
  DType to = DType::f32;
  for (const Tensor& t : in)
    if (t.dtype() == DType::f64) to = DType::f64;
  for (Tensor& t : out)
    if (t.dtype() != to) t = cast(t, to);
  return out;
}
void check_floating(const char* op, const Tensor& t) {
  if (!is_floating(t.dtype()))
    fail<DTypeError>(op, ": expected a floating tensor, got ", describe(t));
}
Tensor fresh(const Meta& m) { return empty(m.shape, m.dtype, m.device); }

// ---- creation ----------------------------------------------------------------------------------
namespace {
Tensor allocate(const Shape& shape, DType dtype, Device device, const char* op) {
  const int64_t n = checked_numel(shape, op, itemsize(dtype));
  const std::size_t bytes = static_cast<std::size_t>(n) * itemsize(dtype);
  Storage* s = nullptr;
  try {
    s = backend_for(device).allocate(bytes);
  } catch (const std::bad_alloc&) {
    fail<MemoryError>(op, ": out of memory allocating ", bytes, " bytes for a ", dtype_name(dtype),
                      shape.str(), " tensor on ", device_name(device));
  }
  detail::g_live_storages.fetch_add(1, std::memory_order_relaxed);
  detail::count_storage_bytes(static_cast<int64_t>(s->nbytes));
  return Tensor(new TensorImpl(StoragePtr(s), shape, contiguous_strides(shape), 0, dtype));
}
Tensor filled(const Shape& shape, double value, DType dtype, Device device, const char* op) {
  Tensor t = allocate(shape, dtype, device, op);
  if (t.numel()) backend_for(device).fill(kview(t), value);
  return t;
}
}  // namespace
Tensor empty(const Shape& shape, DType dtype, Device device) {
  return allocate(shape, dtype, device, "empty");
}
Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  return filled(shape, value, dtype, device, "full");
}
Tensor zeros(const Shape& shape, DType dtype, Device device) {
  return filled(shape, 0.0, dtype, device, "zeros");
}
Tensor ones(const Shape& shape, DType dtype, Device device) {
  return filled(shape, 1.0, dtype, device, "ones");
}
Tensor scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }
Tensor zeros_like(const Tensor& x) { return zeros(x.shape(), x.dtype(), x.device()); }
Tensor ones_like(const Tensor& x) { return ones(x.shape(), x.dtype(), x.device()); }
Tensor full_like(const Tensor& x, double v) { return full(x.shape(), v, x.dtype(), x.device()); }

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype,
                   Device device) {
  if (static_cast<int64_t>(values.size()) != checked_numel(shape, "from_vector"))
    fail<ShapeError>("from_vector: ", values.size(), " values for shape ", shape.str());
  Tensor host = empty(shape, DType::f64);
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(double));
  return to_device(cast(host, dtype), device);
}
Tensor from_indices(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  if (static_cast<int64_t>(values.size()) != checked_numel(shape, "from_indices"))
    fail<ShapeError>("from_indices: ", values.size(), " values for shape ", shape.str());
  Tensor host = empty(shape, DType::i64);
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), values.size() * sizeof(int64_t));
  return to_device(host, device);
}
Tensor arange(int64_t n, DType dtype, Device device) {
  return arange(0, static_cast<double>(n), 1, dtype, device);
}
Tensor arange(double start, double stop, double step, DType dtype, Device device) {
  if (step == 0) fail<ValueError>("arange: step must be non-zero");
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((stop - start) / step)));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + step * static_cast<double>(i);
  return from_vector(v, {n}, dtype, device);
}
Tensor linspace(double start, double stop, int64_t n, DType dtype, Device device) {
  if (n < 0) fail<ValueError>("linspace: negative count ", n);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i)
    v[i] = n == 1 ? start
                  : start + (stop - start) * static_cast<double>(i) / static_cast<double>(n - 1);
  if (n > 1) v[n - 1] = stop;
  return from_vector(v, {n}, dtype, device);
}
Tensor eye(int64_t n, DType dtype, Device device) {
  std::vector<double> v(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) v[i * n + i] = 1.0;
  return from_vector(v, {n, n}, dtype, device);
}

namespace {
Tensor random_tensor(RandomKind kind, double p, const Shape& shape, Generator& gen, DType dtype,
                     Device device) {
  if (!is_floating(dtype))
    fail<DTypeError>("random: dtype must be floating, got ", dtype_name(dtype));
  Tensor t = empty(shape, dtype, device);
  const uint64_t offset = gen.advance(static_cast<uint64_t>(t.numel()));
  if (t.numel()) backend_for(device).random(kind, p, gen.seed(), offset, kview(t));
  return t;
}
}  // namespace
Tensor rand(const Shape& s, Generator& g, DType t, Device d) {
  return random_tensor(RandomKind::uniform, 0, s, g, t, d);
}
Tensor randn(const Shape& s, Generator& g, DType t, Device d) {
  return random_tensor(RandomKind::normal, 0, s, g, t, d);
}
Tensor rademacher(const Shape& s, Generator& g, DType t, Device d) {
  return random_tensor(RandomKind::rademacher, 0, s, g, t, d);
}
Tensor bernoulli(const Shape& s, double p, Generator& g, DType t, Device d) {
  if (!(p >= 0 && p <= 1)) fail<ValueError>("bernoulli: probability ", p, " is outside [0, 1]");
  return random_tensor(RandomKind::bernoulli, p, s, g, t, d);
}
Tensor randn_like(const Tensor& x, Generator& g) {
  return randn(x.shape(), g, x.dtype(), x.device());
}
Tensor rand_like(const Tensor& x, Generator& g) {
  return rand(x.shape(), g, x.dtype(), x.device());
}
Tensor rademacher_like(const Tensor& x, Generator& g) {
  return rademacher(x.shape(), g, x.dtype(), x.device());
}

// ---- Tensor members ----------------------------------------------------------------------------
int64_t Tensor::dim(int64_t axis) const { return shape()[normalize_axis(axis, rank(), "dim")]; }

template <class T>
std::vector<T> Tensor::values() const {
  Tensor c = sg::contiguous(to_device(cast(detach(), dtype_v<T>), Device::cpu()));
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::values<float>() const;
template std::vector<double> Tensor::values<double>() const;
template std::vector<int64_t> Tensor::values<int64_t>() const;
template std::vector<bool> Tensor::values<bool>() const;

std::vector<double> Tensor::to_vector() const { return values<double>(); }
double Tensor::item() const {
  if (numel() != 1)
    fail<ShapeError>("item: tensor ", describe(*this), " has ", numel(), " elements, not 1");
  return to_vector()[0];
}
bool Tensor::requires_grad() const { return p_ && is_tracked(p_); }
bool Tensor::is_leaf() const { return !p_->tape || !current_tape().is_live(p_); }
Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf())
    fail<GradError>("requires_grad_: only leaves can be marked (", describe(*this),
                    " was computed)");
  if (on && !is_floating(dtype()))
    fail<DTypeError>("requires_grad_: ", describe(*this), " is not floating");
  p_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return p_->grad; }
void Tensor::set_grad(const Tensor& g) const { p_->grad = g; }
void Tensor::zero_grad() const { p_->grad.reset(); }
Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }
Tensor Tensor::reshape(const Shape& s) const { return sg::reshape(*this, s); }
Tensor Tensor::to(DType t) const { return cast(*this, t); }
Tensor Tensor::to(Device d) const { return to_device(*this, d); }
Tensor Tensor::contiguous() const { return sg::contiguous(*this); }
Tensor Tensor::clone() const { return apply(OpId::copy, {*this}); }
Tensor Tensor::mT() const { return transpose(*this, -2, -1); }
Tensor Tensor::operator[](int64_t i) const { return select(*this, 0, i); }

}  // namespace sg
