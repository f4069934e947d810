// The VDM noise schedules gamma(t) = -log SNR(t) (see vdm_schedule.hpp).
#include "objectives/vdm_schedule.hpp"

#include <cmath>
#include <memory>
#include <vector>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/tape/forward.hpp"

namespace sg::obj {
namespace {

void require_finite(const std::string& schedule, const std::string& field, double v) {
  if (!std::isfinite(v))
    throw ScheduleError(schedule, field, cat(field, " must be finite, got ", v));
}
void check_options(const std::string& schedule, const MonotoneNetOptions& o) {
  if (o.features < 1)
    throw ScheduleError(schedule, "features", cat("features must be >= 1, got ", o.features));
  if (!(std::isfinite(o.init_std) && o.init_std >= 0))
    throw ScheduleError(schedule, "init_std",
                        cat("init_std must be finite and >= 0, got ", o.init_std));
  if (!is_floating(o.dtype))
    throw ScheduleError(schedule, "dtype",
                        cat("dtype must be floating, got ", dtype_name(o.dtype)));
}
std::unique_ptr<DenseMonotone> dense(int64_t in, int64_t out, double std, bool bias, Generator& gen,
                                     DType dt) {
  return std::make_unique<DenseMonotone>(randn({in, out}, gen, dt) * std,
                                         bias ? zeros({out}, dt) : Tensor());
}
std::unique_ptr<DenseMonotone> constant_dense(double w, double b, bool bias, DType dt) {
  return std::make_unique<DenseMonotone>(full({1, 1}, w, dt), bias ? full({1}, b, dt) : Tensor());
}

}  // namespace

ScheduleError::ScheduleError(std::string schedule_name, std::string field_name,
                             const std::string& message)
    : ValueError(cat("noise schedule '", schedule_name, "', ", field_name, ": ", message)),
      schedule(std::move(schedule_name)),
      field(std::move(field_name)) {}

NoiseSchedule::NoiseSchedule(const std::string& schedule_name, ScheduleRange r) : range_(r) {
  require_finite(schedule_name, "gamma_min", r.gamma_min);
  require_finite(schedule_name, "gamma_max", r.gamma_max);
  if (!(r.gamma_min < r.gamma_max))
    throw ScheduleError(schedule_name, "gamma_min",
                        cat("gamma_min must be below gamma_max (gamma increases), got ",
                            r.gamma_min, " >= ", r.gamma_max));
}

std::pair<Tensor, Tensor> NoiseSchedule::endpoints(const Tensor& like) const {
  const Tensor g = (*this)(from_vector({0.0, 1.0}, {2}, like.dtype(), like.device()));
  return {select(g, 0, 0), select(g, 0, 1)};
}
bool NoiseSchedule::is_interior(const std::string&) const { return false; }

// gamma_min + (gamma_max - gamma_min) t
FixedLinearSchedule::FixedLinearSchedule(ScheduleRange r) : NoiseSchedule("fixed", r) {}
Tensor FixedLinearSchedule::operator()(const Tensor& t) const {
  return t * (range_.gamma_max - range_.gamma_min) + range_.gamma_min;
}

// b + |w| t
LearnedScalarSchedule::LearnedScalarSchedule(ScheduleRange r, DType dtype)
    : NoiseSchedule("learned_scalar", r),
      b(param("b", full({}, r.gamma_min, dtype))),
      w(param("w", full({}, r.gamma_max - r.gamma_min, dtype))) {}
Tensor LearnedScalarSchedule::operator()(const Tensor& t) const { return b + abs(w) * t; }

// x |W| + b
DenseMonotone::DenseMonotone(Tensor w, Tensor b) : weight(param("weight", std::move(w))) {
  if (b.defined()) bias = &param("bias", std::move(b));
}
Tensor DenseMonotone::operator()(const Tensor& x) const {
  const Tensor y = matmul(x, abs(weight));
  return bias ? y + *bias : y;
}

// l1(t) + l3(phi(l2(2t - 1))) / features
MonotoneNet::MonotoneNet(double l1_weight, bool l1_has_bias, double l1_bias,
                         const MonotoneNetOptions& o, Generator& gen)
    : l1(child("l1", constant_dense(l1_weight, l1_bias, l1_has_bias, o.dtype))),
      l2(child("l2", dense(1, o.features, o.init_std, true, gen, o.dtype))),
      l3(child("l3", dense(o.features, 1, o.init_std, false, gen, o.dtype))),
      features(o.features) {}
Tensor MonotoneNet::operator()(const Tensor& t) const {
  const Tensor tc = reshape(t, {t.numel(), 1});
  const Tensor phi = (sigmoid(l2(tc * 2.0 - 1.0)) - 0.5) * 2.0;
  return reshape(l1(tc) + l3(phi) / double(features), t.shape());
}

MonotoneNetSchedule::MonotoneNetSchedule(MonotoneNetOptions o, Generator& gen)
    : NoiseSchedule("monotone_net", o.range),
      net(child("net", (check_options("monotone_net", o),
                        std::make_unique<MonotoneNet>(o.range.gamma_max - o.range.gamma_min, true,
                                                      o.range.gamma_min, o, gen)))) {}
Tensor MonotoneNetSchedule::operator()(const Tensor& t) const { return net(t); }

// gamma_0 + |delta| (h(t) - h(0)) / (h(1) - h(0)), h evaluated once on [t, 0, 1]
LearnedEndpointsSchedule::LearnedEndpointsSchedule(MonotoneNetOptions o, Generator& gen)
    : NoiseSchedule("learned_endpoints", o.range),
      gamma_0(param("gamma_0",
                    (check_options("learned_endpoints", o), full({}, o.range.gamma_min, o.dtype)))),
      delta(param("delta", full({}, o.range.gamma_max - o.range.gamma_min, o.dtype))),
      shape(child("shape", std::make_unique<MonotoneNet>(1.0, false, 0.0, o, gen))) {}
Tensor LearnedEndpointsSchedule::normalised_shape(const Tensor& t) const {
  const int64_t n = t.numel();
  const Tensor ends = from_vector({0.0, 1.0}, {2}, t.dtype(), t.device());
  const Tensor h = shape(concat({reshape(t, {n}), ends}, 0));
  const Tensor h0 = slice(h, 0, n, n + 1), h1 = slice(h, 0, n + 1, n + 2);
  return reshape((slice(h, 0, 0, n) - h0) / (h1 - h0), t.shape());
}
Tensor LearnedEndpointsSchedule::operator()(const Tensor& t) const {
  return gamma_0 + abs(delta) * normalised_shape(t);
}
std::pair<Tensor, Tensor> LearnedEndpointsSchedule::endpoints(const Tensor&) const {
  return {gamma_0 + 0.0, gamma_0 + abs(delta)};
}
bool LearnedEndpointsSchedule::is_interior(const std::string& parameter_name) const {
  return parameter_name.rfind("shape.", 0) == 0;
}

// B + log(-expm1(-B)) = log(e^B - 1), B = int_0^t beta
Tensor vp_gamma(const VpSde& sde, const Tensor& t) {
  const Tensor B = sde.integral_beta(t);
  return B + log(-expm1(-B));
}

VpSchedule::VpSchedule(const VpSde& sde, double t_eps_)
    : NoiseSchedule("vp",
                    [&] {
                      require_finite("vp", "t_eps", t_eps_);
                      if (!(t_eps_ > 0 && t_eps_ < 1))
                        throw ScheduleError("vp", "t_eps",
                                            cat("t_eps must lie in (0, 1), got ", t_eps_));
                      const Tensor g = vp_gamma(sde, from_vector({t_eps_, 1.0}, {2}, DType::f64));
                      return ScheduleRange{g[0].item(), g[1].item()};
                    }()),
      t_eps(t_eps_),
      sde_(sde) {}
Tensor VpSchedule::operator()(const Tensor& t) const {
  return vp_gamma(sde_, maximum(t, full_like(t, t_eps)));
}

std::pair<Tensor, Tensor> gamma_and_derivative(const NoiseSchedule& schedule, const Tensor& t) {
  DualLevel level;
  const Tensor g = schedule(level.make_dual(t, ones_like(t)));
  Tensor dg = level.tangent(g);
  return {g, dg};  // the level's tangents are dropped here; both keep their reverse history
}

std::pair<DType, Device> schedule_placement(const NoiseSchedule& schedule) {
  for (const auto& [n, p] : const_cast<NoiseSchedule&>(schedule).named_parameters())
    return {p->dtype(), p->device()};
  return {DType::f64, Device::cpu()};
}

void check_monotone(const NoiseSchedule& schedule, int64_t points) {
  if (points < 2)
    throw ScheduleError(schedule.name(), "points", cat("points must be >= 2, got ", points));
  NoGradGuard off;
  const auto [dt, dev] = schedule_placement(schedule);
  const std::vector<double> g =
      schedule(linspace(0.0, 1.0, points, dt, dev)).to(Device::cpu()).to_vector();
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i]))
      throw ScheduleError(
          schedule.name(), "monotone",
          cat("gamma(", double(i) / double(points - 1), ") = ", g[i], " is not finite"));
    if (i > 0 && g[i] < g[i - 1])
      throw ScheduleError(
          schedule.name(), "monotone",
          cat("gamma decreases between t = ", double(i - 1) / double(points - 1), " and ",
              double(i) / double(points - 1), " (", g[i - 1], " -> ", g[i], ")"));
  }
  if (!(g.front() < g.back()))
    throw ScheduleError(schedule.name(), "monotone",
                        cat("gamma(0) = ", g.front(), " must be below gamma(1) = ", g.back()));
}

}  // namespace sg::obj
