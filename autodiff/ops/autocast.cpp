// The autocast state (one per thread) and the loss scaler.
#include "autodiff/ops/autocast.hpp"

#include <cmath>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

namespace sg {
namespace {
thread_local std::optional<DType> t_autocast;
}  // namespace

AutocastGuard::AutocastGuard(DType half, bool enabled) : prev_(t_autocast) {
  if (!is_half(half))
    fail<DTypeError>("AutocastGuard: expected bfloat16 or float16, got ", dtype_name(half));
  if (enabled) t_autocast = half;
}
AutocastGuard::~AutocastGuard() { t_autocast = prev_; }
std::optional<DType> autocast_dtype() { return t_autocast; }

namespace detail {
bool autocast_active() { return t_autocast.has_value(); }
Tensor autocast_to_half(const Tensor& x) {
  return t_autocast && x.dtype() == DType::f32 ? cast(x, *t_autocast) : x;
}
}  // namespace detail

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.enabled ? o.init_scale : 1.0) {
  if (!(o.init_scale > 0) || !std::isfinite(o.init_scale) || !(o.growth_factor >= 1) ||
      !(o.backoff_factor > 0 && o.backoff_factor < 1) || o.growth_interval < 1)
    fail<ValueError>(
        "GradScaler: need init_scale > 0 (finite), growth_factor >= 1, "
        "backoff_factor in (0, 1) and growth_interval >= 1; got ",
        o.init_scale, ", ", o.growth_factor, ", ", o.backoff_factor, ", ", o.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const { return o_.enabled ? loss * scale_ : loss; }

bool GradScaler::unscale(std::vector<Tensor>& grads) const {
  NoGradGuard off;
  bool finite = true;
  for (Tensor& g : grads) {
    if (!g.defined()) continue;
    // |g| < inf is false exactly at inf and NaN; one reduction per tensor.
    if (sum(abs(g) < INFINITY).item() != static_cast<double>(g.numel())) finite = false;
    if (!o_.enabled) continue;
    // In float32 at least: S itself may not fit a float16 (65536 does not).
    g = is_half(g.dtype()) ? cast(cast(g, DType::f32) / scale_, g.dtype()) : g / scale_;
  }
  return finite;
}

bool GradScaler::update(bool finite) {
  if (!o_.enabled) return finite;
  if (!finite) {
    scale_ *= o_.backoff_factor;
    good_ = 0;
    ++skipped_;
    return false;
  }
  if (++good_ >= o_.growth_interval) {
    const double grown = scale_ * o_.growth_factor;
    if (std::isfinite(grown)) scale_ = grown;
    good_ = 0;
  }
  return true;
}

}  // namespace sg
