// The plots of sg::viz: ticks and their labels, the shared axes drawing, and line_plot,
// scatter_plot, heatmap and image_grid with the Frame (layout) each of them computes first.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "viz/plot.hpp"

namespace sg::viz {

namespace {

const Rgb kInk{34, 34, 34}, kAxis{80, 80, 80}, kGrid{228, 228, 228}, kGridMinor{243, 243, 243},
    kMuted{120, 120, 120}, kWhite{255, 255, 255}, kNanGrey{128, 128, 128};
constexpr int kTick = 4;     // tick mark length, outside the frame
constexpr int kTickGap = 3;  // between a tick mark and its label
constexpr int kOuter = 10;   // blank border around a figure
constexpr int kCapHeight = 7;

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument(msg); }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The smallest number of decimals (0..12) that writes step exactly enough.
int decimals_for(double step) {
  step = std::fabs(step);
  for (int d = 0; d < 12; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::fabs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) return d;
  }
  return 12;
}

// Axis ticks with their labels.
struct Ticks {
  std::vector<double> at;
  std::vector<std::string> label;
  std::vector<double> minor;  // grid only
  int max_width() const {
    int w = 0;
    for (const auto& s : label) w = std::max(w, Image::text_width(s));
    return w;
  }
};

Ticks linear_ticks(double lo, double hi, int target) {
  Ticks t;
  t.at = nice_ticks(lo, hi, target);
  const double step = t.at.size() > 1 ? t.at[1] - t.at[0] : (t.at.empty() ? 1 : t.at[0]);
  for (double v : t.at) t.label.push_back(format_tick(v, step == 0 ? 1 : step));
  return t;
}

std::string power_label(int k) {
  if (k >= -2 && k <= 4) return format_tick(std::pow(10.0, k), std::pow(10.0, k));
  return "1e" + std::to_string(k);
}

// Ticks for a log axis showing [10^lo, 10^hi]: decades (every s-th when there are many, with
// minor grid at 2..9 when every decade is labelled), else 1-2-5 steps, else linear ticks.
Ticks log_ticks(double lo, double hi) {
  Ticks t;
  const double span = hi - lo;
  const int k0 = static_cast<int>(std::ceil(lo - 1e-9)),
            k1 = static_cast<int>(std::floor(hi + 1e-9));
  const int s = std::max(1, static_cast<int>(std::ceil(span / 7)));
  if (s == 1)
    for (int k = k0 - 1; k <= k1; ++k)
      for (int m = 2; m <= 9; ++m) {
        const double v = m * std::pow(10.0, k), e = std::log10(v);
        if (e >= lo && e <= hi) t.minor.push_back(v);
      }
  if (k1 - k0 >= 2) {
    for (int k = k0; k <= k1; k += s)
      t.at.push_back(std::pow(10.0, k)), t.label.push_back(power_label(k));
    return t;
  }
  for (int k = k0 - 1; k <= k1; ++k)
    for (int m : {1, 2, 5}) {
      const double v = m * std::pow(10.0, k), e = std::log10(v);
      if (e >= lo - 1e-9 && e <= hi + 1e-9)
        t.at.push_back(v),
            t.label.push_back(m == 1 ? power_label(k) : format_tick(v, std::pow(10.0, k)));
    }
  if (t.at.size() >= 3) return t;
  const Ticks lin = linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), 5);
  t.at.clear(), t.label.clear();
  for (size_t i = 0; i < lin.at.size(); ++i)
    if (lin.at[i] > 0) t.at.push_back(lin.at[i]), t.label.push_back(lin.label[i]);
  return t;
}

// Linear x ticks whose labels do not crowd each other in `pixels`.
Ticks fitting_x_ticks(double lo, double hi, int pixels) {
  for (int target = std::clamp(pixels / 60, 3, 10);; --target) {
    Ticks t = linear_ticks(lo, hi, target);
    if (target <= 2 || t.at.size() < 2) return t;
    const double spacing = pixels * (t.at[1] - t.at[0]) / (hi - lo);
    if (t.max_width() + 12 <= spacing) return t;
  }
}

// Widens a degenerate range and pads it by `pad` of its span on each side.
void pad_range(double& lo, double& hi, double pad) {
  if (!std::isfinite(hi - lo)) lo = std::max(lo, -1e307), hi = std::min(hi, 1e307);
  if (!(hi > lo)) {
    const double d = lo != 0 ? std::fabs(lo) * 0.1 : 1.0;
    lo -= d, hi += d;
  }
  const double p = (hi - lo) * pad;
  lo -= p, hi += p;
}

// Title centred over the area (scale 2 when it fits in the image).
void draw_title(Image& img, const std::string& title, int center_x, int y) {
  if (title.empty()) return;
  const int scale = Image::text_width(title, 2) <= img.width() - 8 ? 2 : 1;
  const int w = Image::text_width(title, scale);
  const int x = std::clamp(center_x - w / 2, 4, std::max(4, img.width() - 4 - w));
  img.text(x, y + (scale == 2 ? 0 : 4), title, kInk, scale);
}

int title_band(const std::string& title) { return title.empty() ? 14 : kOuter + 16 + 12; }

// A one-pixel outline just outside the box [l, r) x [t, b).
void outline(Image& img, int l, int t, int r, int b, Rgb c) {
  img.fill_rect(l - 1, t - 1, r + 1, t, c);
  img.fill_rect(l - 1, b, r + 1, b + 1, c);
  img.fill_rect(l - 1, t - 1, l, b + 1, c);
  img.fill_rect(r, t - 1, r + 1, b + 1, c);
}

// The frame border, tick marks and labels around f's area (which the caller has drawn).
void draw_axes(Image& img, const Frame& f, const Ticks& xt, const Ticks& yt) {
  const int l = f.left, b = f.top + f.height;
  outline(img, l, f.top, f.left + f.width, b, kAxis);
  for (size_t i = 0; i < xt.at.size(); ++i) {
    const int x = static_cast<int>(std::lround(f.px(xt.at[i])));
    img.fill_rect(x, b + 1, x + 1, b + 1 + kTick, kAxis);
    const int w = Image::text_width(xt.label[i]);
    img.text(x - w / 2, b + 1 + kTick + kTickGap, xt.label[i], kInk);
  }
  for (size_t i = 0; i < yt.at.size(); ++i) {
    const int y = static_cast<int>(std::lround(f.py(yt.at[i])));
    img.fill_rect(l - 1 - kTick, y, l - 1, y + 1, kAxis);
    const int w = Image::text_width(yt.label[i]);
    img.text(l - 1 - kTick - kTickGap - w, y - kCapHeight / 2, yt.label[i], kInk);
  }
}

// Grid lines at the ticks, in area-local pixels.
void draw_grid(Image& area, const Frame& f, const Ticks& xt, const Ticks& yt) {
  for (double v : yt.minor) {
    const int y = static_cast<int>(std::lround(f.py(v))) - f.top;
    area.fill_rect(0, y, f.width, y + 1, kGridMinor);
  }
  for (double v : xt.at) {
    const int x = static_cast<int>(std::lround(f.px(v))) - f.left;
    area.fill_rect(x, 0, x + 1, f.height, kGrid);
  }
  for (double v : yt.at) {
    const int y = static_cast<int>(std::lround(f.py(v))) - f.top;
    area.fill_rect(0, y, f.width, y + 1, kGrid);
  }
}

int count_changed(const Image& a, const Image& b, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = std::max(y0, 0); y < std::min(y1, a.height()); ++y)
    for (int x = std::max(x0, 0); x < std::min(x1, a.width()); ++x)
      n += !(a.get(x, y) == b.get(x, y));
  return n;
}

// A plot's layout: its frame and both axes' ticks.
struct Layout {
  Frame f;
  Ticks xt, yt;
};

Layout line_layout(const std::vector<Series>& series, const LineOptions& o) {
  if (o.width <= 0 || o.height <= 0)
    bad("line_plot: width and height must be positive (got " + std::to_string(o.width) + " x " +
        std::to_string(o.height) + ")");
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (size_t s = 0; s < series.size(); ++s) {
    const Series& sr = series[s];
    if (!sr.x.empty() && sr.x.size() != sr.y.size())
      bad("line_plot: series " + std::to_string(s) + " has " + std::to_string(sr.x.size()) +
          " x values but " + std::to_string(sr.y.size()) + " y values");
    for (size_t i = 0; i < sr.y.size(); ++i) {
      const double x = sr.x.empty() ? static_cast<double>(i) : sr.x[i], y = sr.y[i];
      if (!std::isfinite(x) || !std::isfinite(y) || (o.log_y && y <= 0)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      const double yv = o.log_y ? std::log10(y) : y;
      y0 = std::min(y0, yv), y1 = std::max(y1, yv);
    }
  }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  pad_range(x0, x1, 0.02);
  if (o.log_y && !(y1 > y0)) y0 -= 0.5, y1 += 0.5;
  pad_range(y0, y1, 0.05);

  Layout L;
  Frame& f = L.f;
  f.log_y = o.log_y;
  f.xmin = x0, f.xmax = x1;
  f.ymin = o.log_y ? std::pow(10.0, y0) : y0, f.ymax = o.log_y ? std::pow(10.0, y1) : y1;
  f.top = title_band(o.title);
  const int bottom = kTick + kTickGap + Image::text_height() +
                     (o.xlabel.empty() ? 0 : 6 + Image::text_height()) + kOuter;
  f.height = o.height - f.top - bottom;
  if (f.height < 20)
    bad("line_plot: a " + std::to_string(o.width) + " x " + std::to_string(o.height) +
        " image leaves no room for the plotting area");
  L.yt = o.log_y ? log_ticks(y0, y1) : linear_ticks(y0, y1, std::clamp(f.height / 50, 4, 8));
  f.left = kOuter + (o.ylabel.empty() ? 0 : Image::text_height() + 8) + L.yt.max_width() +
           kTickGap + kTick + 1;
  f.width = o.width - f.left - 24;
  if (f.width < 20)
    bad("line_plot: a " + std::to_string(o.width) + " x " + std::to_string(o.height) +
        " image leaves no room for the plotting area");
  L.xt = fitting_x_ticks(x0, x1, f.width);
  return L;
}

// Quantile q of v (which it reorders).
double quantile(std::vector<double>& v, double q) {
  const size_t k = static_cast<size_t>(std::floor(q * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

void check_limits(const char* fn, const char* axis, double lo, double hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    bad(std::string(fn) + ": " + axis + " limits must be finite with min <= max (got " + num(lo) +
        " .. " + num(hi) + ")");
}

// Layout of a square area of `size` with ticks on both axes.
Layout square_layout(double x0, double x1, double y0, double y1, int size,
                     const std::string& title) {
  Layout L;
  Frame& f = L.f;
  f.xmin = x0, f.xmax = x1, f.ymin = y0, f.ymax = y1;
  f.width = f.height = size;
  f.top = title_band(title);
  L.yt = linear_ticks(y0, y1, std::clamp(size / 50, 4, 8));
  f.left = kOuter + L.yt.max_width() + kTickGap + kTick + 1;
  L.xt = fitting_x_ticks(x0, x1, size);
  return L;
}

int square_height(const Frame& f, bool note = false) {
  return f.top + f.height + 1 + kTick + kTickGap + Image::text_height() + kOuter +
         (note ? Image::text_height() + 4 : 0);
}

Layout scatter_layout(const std::vector<double>& xy, const ScatterOptions& o) {
  if (o.size <= 0 || o.radius < 0 || xy.size() % 2 != 0)
    bad("scatter_plot: needs size > 0, radius >= 0 and an even number of values (got size " +
        std::to_string(o.size) + ", radius " + std::to_string(o.radius) + ", " +
        std::to_string(xy.size()) + " values)");
  check_limits("scatter_plot", "x", o.xmin, o.xmax);
  check_limits("scatter_plot", "y", o.ymin, o.ymax);
  std::vector<double> xs, ys;
  for (size_t i = 0; i + 1 < xy.size(); i += 2)
    if (std::isfinite(xy[i]) && std::isfinite(xy[i + 1]))
      xs.push_back(xy[i]), ys.push_back(xy[i + 1]);
  const auto fit = [](std::vector<double>& v, double& lo, double& hi) {
    if (v.empty()) {
      lo = -1, hi = 1;
      return;
    }
    // The data's extent, leaving out values far beyond the 0.5% .. 99.5% quantiles.
    const double qlo = quantile(v, 0.005), qhi = quantile(v, 0.995);
    const double reach = (qhi - qlo) * 0.25;
    lo = qlo, hi = qhi;
    for (double x : v)
      if (x >= qlo - reach && x <= qhi + reach) lo = std::min(lo, x), hi = std::max(hi, x);
    pad_range(lo, hi, 0.05);
  };
  double x0 = o.xmin, x1 = o.xmax, y0 = o.ymin, y1 = o.ymax;
  const bool fit_x = x0 == x1, fit_y = y0 == y1;
  if (fit_x) fit(xs, x0, x1);
  if (fit_y) fit(ys, y0, y1);
  const double sx = x1 - x0, sy = y1 - y0;
  if (fit_x && fit_y && std::max(sx, sy) <= 4 * std::min(sx, sy)) {
    // Equal aspect: both spans become the larger one.
    const double span = std::max(sx, sy), cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    x0 = cx - span / 2, x1 = cx + span / 2, y0 = cy - span / 2, y1 = cy + span / 2;
  }
  return square_layout(x0, x1, y0, y1, o.size, o.title);
}

void check_heatmap(const std::vector<double>* values, int nx, int ny, const HeatmapOptions& o) {
  if (nx <= 0 || ny <= 0 || o.size <= 0 ||
      (values && values->size() != static_cast<size_t>(nx) * static_cast<size_t>(ny)))
    bad("heatmap: needs nx, ny, size > 0 and nx * ny values (got nx " + std::to_string(nx) +
        ", ny " + std::to_string(ny) + ", size " + std::to_string(o.size) +
        (values ? ", " + std::to_string(values->size()) + " values" : std::string()) + ")");
  check_limits("heatmap", "x", o.xmin, o.xmax);
  check_limits("heatmap", "y", o.ymin, o.ymax);
}

Layout heatmap_layout(int nx, int ny, const HeatmapOptions& o) {
  const bool ix = o.xmin == o.xmax, iy = o.ymin == o.ymax;
  return square_layout(ix ? 0 : o.xmin, ix ? nx : o.xmax, iy ? 0 : o.ymin, iy ? ny : o.ymax, o.size,
                       o.title);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (lo > hi) std::swap(lo, hi);
  if (lo == hi) return {lo};
  target = std::max(target, 2);
  const double raw = (hi - lo) / (target - 1), mag = std::pow(10.0, std::floor(std::log10(raw)));
  // The nice step whose tick count comes closest to target (2.5 counting as half a tick off,
  // fewer than three ticks as one more, the finer step winning a tie).
  const auto miss = [&](double m) {
    const double step = m * mag;
    const double n = std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9) + 1;
    return std::fabs(n - target) + (m == 2.5 ? 0.5 : 0.0) + (n < 3 ? 1.0 : 0.0);
  };
  double best = 1;
  for (double m : {2.0, 2.5, 5.0, 10.0})
    if (miss(m) < miss(best)) best = m;
  const double step = best * mag;
  std::vector<double> out;
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  if (!(std::fabs(k0) < 1e15 && std::fabs(k1) < 1e15)) return {lo, hi};  // beyond precision
  for (double k = k0; k <= k1; ++k) {
    const double v = k * step;
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

std::string format_tick(double v, double step) {
  if (!std::isfinite(v)) return num(v);
  if (!(std::fabs(step) > 0) || !std::isfinite(step)) step = v != 0 ? std::fabs(v) : 1;
  if (std::fabs(v) < std::fabs(step) * 1e-9) return "0";
  char buf[40];
  const int d = decimals_for(step);
  if (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3 || std::fabs(step) < 0.01 * (1 - 1e-9) || d > 4) {
    int e = static_cast<int>(std::floor(std::log10(std::fabs(v))));
    const int md = std::min(3, decimals_for(step / std::pow(10.0, e)));
    double m = v / std::pow(10.0, e);
    std::snprintf(buf, sizeof buf, "%.*f", md, m);
    if (std::fabs(std::atof(buf)) >= 10) ++e, std::snprintf(buf, sizeof buf, "%.*f", md, m / 10);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
      while (s.back() == '0') s.pop_back();
      if (s.back() == '.') s.pop_back();
    }
    return s + "e" + std::to_string(e);
  }
  std::snprintf(buf, sizeof buf, "%.*f", d, v);
  return buf;
}

double Frame::px(double x) const { return left + (x - xmin) / (xmax - xmin) * (width - 1); }

double Frame::py(double y) const {
  const double t = log_y
                       ? (std::log10(y) - std::log10(ymin)) / (std::log10(ymax) - std::log10(ymin))
                       : (y - ymin) / (ymax - ymin);
  return top + (height - 1) * (1 - t);
}

Frame line_plot_frame(const std::vector<Series>& series, const LineOptions& o) {
  return line_layout(series, o).f;
}

Image line_plot(const std::vector<Series>& series, const LineOptions& o) {
  const Layout L = line_layout(series, o);
  const Frame& f = L.f;
  Image img(o.width, o.height);
  Image area(f.width, f.height);
  draw_grid(area, f, L.xt, L.yt);
  const Image grid_only = area;
  for (const Series& s : series) {
    std::vector<double> xs(s.y.size()), ys(s.y.size());
    for (size_t i = 0; i < s.y.size(); ++i) {
      const double x = s.x.empty() ? static_cast<double>(i) : s.x[i], y = s.y[i];
      const bool ok = std::isfinite(x) && std::isfinite(y) && (!o.log_y || y > 0);
      xs[i] = ok ? f.px(x) - f.left : NAN;
      ys[i] = ok ? f.py(y) - f.top : NAN;
    }
    area.polyline(xs, ys, s.color, 1.5);
  }
  // Legend in the corner where the lines leave the most room.
  std::vector<const Series*> labelled;
  int label_w = 0;
  for (const Series& s : series)
    if (!s.label.empty())
      labelled.push_back(&s), label_w = std::max(label_w, Image::text_width(s.label));
  if (!labelled.empty()) {
    const int row = 13, bw = 6 + 20 + 6 + label_w + 7,
              bh = 5 + row * static_cast<int>(labelled.size()) + 2;
    const int corners[4][2] = {{f.width - bw - 8, 8},
                               {8, 8},
                               {f.width - bw - 8, f.height - bh - 8},
                               {8, f.height - bh - 8}};
    int best = 0, best_ink = -1;
    for (int c = 0; c < 4; ++c) {
      const int ink = count_changed(area, grid_only, corners[c][0], corners[c][1],
                                    corners[c][0] + bw, corners[c][1] + bh);
      if (best_ink < 0 || ink < best_ink) best = c, best_ink = ink;
    }
    const int bx = corners[best][0], by = corners[best][1];
    for (int y = by; y < by + bh; ++y)
      for (int x = bx; x < bx + bw; ++x) area.blend(x, y, kWhite, 0.85);
    outline(area, bx + 1, by + 1, bx + bw - 1, by + bh - 1, kGrid);
    for (size_t i = 0; i < labelled.size(); ++i) {
      const int y = by + 5 + row * static_cast<int>(i);
      area.line(bx + 6, y + 3, bx + 26, y + 3, labelled[i]->color, 2.0);
      area.text(bx + 32, y, labelled[i]->label, kInk);
    }
  }
  img.paste(area, f.left, f.top);
  draw_axes(img, f, L.xt, L.yt);
  draw_title(img, o.title, f.left + f.width / 2, kOuter);
  const int below = f.top + f.height + 1 + kTick + kTickGap + Image::text_height() + 6;
  if (!o.xlabel.empty())
    img.text(f.left + f.width / 2 - Image::text_width(o.xlabel) / 2, below, o.xlabel, kInk);
  if (!o.ylabel.empty())
    img.text_vertical(kOuter, f.top + f.height / 2 - Image::text_width(o.ylabel) / 2, o.ylabel,
                      kInk);
  return img;
}

Frame scatter_frame(const std::vector<double>& xy, const ScatterOptions& o) {
  return scatter_layout(xy, o).f;
}

Image scatter_plot(const std::vector<double>& xy, const ScatterOptions& o) {
  const Layout L = scatter_layout(xy, o);
  const Frame& f = L.f;
  size_t outside = 0, points = 0;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    const double x = xy[i], y = xy[i + 1];
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    ++points;
    outside += x < f.xmin || x > f.xmax || y < f.ymin || y > f.ymax;
  }
  Image img(f.left + f.width + 1 + 24, square_height(f, outside > 0));
  Image area(f.width, f.height);
  draw_grid(area, f, L.xt, L.yt);
  const int r = o.radius;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    const double x = xy[i], y = xy[i + 1];
    if (!std::isfinite(x) || !std::isfinite(y) || x < f.xmin || x > f.xmax || y < f.ymin ||
        y > f.ymax)
      continue;
    const int cx = static_cast<int>(std::lround(f.px(x))) - f.left;
    const int cy = static_cast<int>(std::lround(f.py(y))) - f.top;
    for (int dy = -r; dy <= r; ++dy)
      for (int dx = -r; dx <= r; ++dx)
        if (dx * dx + dy * dy <= r * r + r) area.blend(cx + dx, cy + dy, o.color, o.alpha);
  }
  img.paste(area, f.left, f.top);
  draw_axes(img, f, L.xt, L.yt);
  draw_title(img, o.title, f.left + f.width / 2, kOuter);
  if (outside > 0) {
    const std::string note = std::to_string(outside) + " of " + std::to_string(points) + " outside";
    img.text(f.left + f.width - Image::text_width(note),
             f.top + f.height + 1 + kTick + kTickGap + Image::text_height() + 4, note, kMuted);
  }
  return img;
}

Frame heatmap_frame(int nx, int ny, const HeatmapOptions& o) {
  check_heatmap(nullptr, nx, ny, o);
  return heatmap_layout(nx, ny, o).f;
}

Image heatmap(const std::vector<double>& values, int nx, int ny, const HeatmapOptions& o) {
  check_heatmap(&values, nx, ny, o);
  const Layout L = heatmap_layout(nx, ny, o);
  const Frame& f = L.f;
  double vmin = INFINITY, vmax = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) vmin = std::min(vmin, v), vmax = std::max(vmax, v);
  const bool any = vmin <= vmax;
  const auto shade = [&](double v) {
    if (std::isnan(v)) return kNanGrey;
    if (!any || vmax == vmin) return viridis(std::isinf(v) ? (v > 0 ? 1.0 : 0.0) : 0.5);
    return viridis((v - vmin) / (vmax - vmin));
  };
  // Colorbar geometry to the right of the area.
  const int bar_x = f.left + f.width + 1 + 14, bar_w = 16;
  Ticks ct;
  if (any) ct = linear_ticks(vmin, vmax, std::clamp(o.size / 50, 4, 8));
  int right = 24;
  if (o.colorbar)
    right = 14 + bar_w + 2 + kTick + kTickGap + ct.max_width() +
            (o.colorbar_label.empty() ? 0 : 8 + Image::text_height()) + kOuter;
  Image img(f.left + f.width + 1 + right, square_height(f));
  for (int j = 0; j < f.height; ++j) {
    const int iy = std::min(ny - 1, static_cast<int>((f.height - 1 - j + 0.5) * ny / f.height));
    for (int i = 0; i < f.width; ++i) {
      const int ix = std::min(nx - 1, static_cast<int>((i + 0.5) * nx / f.width));
      img.set(f.left + i, f.top + j, shade(values[static_cast<size_t>(iy) * nx + ix]));
    }
  }
  draw_axes(img, f, L.xt, L.yt);
  draw_title(img, o.title, f.left + f.width / 2, kOuter);
  if (!o.colorbar) return img;
  const int t = f.top, b = f.top + f.height;
  for (int j = 0; j < f.height; ++j)
    img.fill_rect(bar_x, t + j, bar_x + bar_w, t + j + 1,
                  viridis(1.0 - static_cast<double>(j) / std::max(1, f.height - 1)));
  outline(img, bar_x, t, bar_x + bar_w, b, kAxis);
  const int tick_x = bar_x + bar_w + 1;
  for (size_t i = 0; i < ct.at.size(); ++i) {
    const double u = vmax > vmin ? (ct.at[i] - vmin) / (vmax - vmin) : 0.5;
    const int y = t + static_cast<int>(std::lround((1 - u) * (f.height - 1)));
    img.fill_rect(tick_x, y, tick_x + kTick, y + 1, kAxis);
    img.text(tick_x + kTick + kTickGap, y - kCapHeight / 2, ct.label[i], kInk);
  }
  if (!o.colorbar_label.empty())
    img.text_vertical(tick_x + kTick + kTickGap + ct.max_width() + 8,
                      t + f.height / 2 - Image::text_width(o.colorbar_label) / 2, o.colorbar_label,
                      kInk);
  return img;
}

int grid_title_height() { return 20; }

Image image_grid(const std::vector<double>& pixels, int n, int h, int w, const GridOptions& o) {
  const long long need = static_cast<long long>(n) * h * w;
  if (n <= 0 || h <= 0 || w <= 0 || o.cols <= 0 || o.scale <= 0 || o.pad < 0 ||
      need != static_cast<long long>(pixels.size()))
    bad("image_grid: needs n, h, w, cols, scale > 0, pad >= 0 and n*h*w values (got n " +
        std::to_string(n) + ", h " + std::to_string(h) + ", w " + std::to_string(w) + ", cols " +
        std::to_string(o.cols) + ", scale " + std::to_string(o.scale) + ", pad " +
        std::to_string(o.pad) + ", " + std::to_string(pixels.size()) + " values)");
  if (!std::isfinite(o.lo) || !std::isfinite(o.hi) || !(o.lo < o.hi))
    bad("image_grid: needs finite lo < hi (got " + num(o.lo) + ", " + num(o.hi) + ")");
  const int cols = std::min(o.cols, n), rows = (n + cols - 1) / cols;
  const int tw = w * o.scale, th = h * o.scale;
  const int top = o.title.empty() ? 0 : grid_title_height();
  const int grid_w = o.pad + cols * (tw + o.pad);
  const int width = std::max(grid_w, o.title.empty() ? 0 : Image::text_width(o.title) + 8);
  Image img(width, top + o.pad + rows * (th + o.pad));
  if (!o.title.empty())
    img.text(std::max(4, grid_w / 2 - Image::text_width(o.title) / 2), 6, o.title, kInk);
  for (int k = 0; k < n; ++k) {
    const int x0 = o.pad + (k % cols) * (tw + o.pad), y0 = top + o.pad + (k / cols) * (th + o.pad);
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        const double v = pixels[(static_cast<size_t>(k) * h + i) * w + j];
        Rgb c{255, 0, 255};
        if (!std::isnan(v)) {
          const double u = std::clamp((v - o.lo) / (o.hi - o.lo), 0.0, 1.0);
          const auto g = static_cast<uint8_t>(std::lround(255 * u));
          c = {g, g, g};
        }
        img.fill_rect(x0 + j * o.scale, y0 + i * o.scale, x0 + (j + 1) * o.scale,
                      y0 + (i + 1) * o.scale, c);
      }
  }
  return img;
}

}  // namespace sg::viz
