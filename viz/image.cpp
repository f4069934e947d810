// The raster behind sg::viz: Image's pixels, blending, anti-aliased strokes, pasting and
// concatenation, the colour tables, and PNG encoding (stb_image_write) with atomic saves.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "viz/plot.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sg::viz {

static_assert(sizeof(Rgb) == 3, "Rgb must be three packed bytes for PNG encoding");

namespace {

constexpr long long kMaxPixels = 1LL << 28;

uint8_t mix(uint8_t under, uint8_t over, double a) {
  return static_cast<uint8_t>(std::lround(under + (over - under) * a));
}

// Liang-Barsky: clips the segment to the box; false when nothing of it is inside. A clipped end
// is put on its boundary with the other coordinate from the slope, which stays accurate when the
// segment's ends are huge (a far outlier).
bool clip_segment(double& x0, double& y0, double& x1, double& y1, double lo_x, double lo_y,
                  double hi_x, double hi_y) {
  double t0 = 0, t1 = 1;
  int side0 = -1, side1 = -1;
  const double dx = x1 - x0, dy = y1 - y0;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {x0 - lo_x, hi_x - x0, y0 - lo_y, hi_y - y0};
  const double bound[4] = {lo_x, hi_x, lo_y, hi_y};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
      continue;
    }
    const double t = q[i] / p[i];
    if (p[i] < 0 && t > t0) t0 = t, side0 = i;
    if (p[i] > 0 && t < t1) t1 = t, side1 = i;
    if (t0 > t1) return false;
  }
  const double ax = x0, ay = y0;
  const auto place = [&](int side, double& x, double& y) {
    if (side < 2)
      x = bound[side], y = ay + (x - ax) * (dy / dx);
    else
      y = bound[side], x = ax + (y - ay) * (dx / dy);
  };
  if (side1 >= 0) place(side1, x1, y1);
  if (side0 >= 0) place(side0, x0, y0);
  return true;
}

double segment_distance(double px, double py, double x0, double y0, double x1, double y1) {
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0.0;
  t = std::clamp(t, 0.0, 1.0);
  return std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
}

}  // namespace

Image::Image(int width, int height, Rgb background) : width_(width), height_(height) {
  if (width <= 0 || height <= 0 || static_cast<long long>(width) * height > kMaxPixels)
    throw std::invalid_argument(
        "Image: width and height must be positive and at most 2^28 "
        "pixels in all (got " +
        std::to_string(width) + " x " + std::to_string(height) + ")");
  pixels_.assign(static_cast<size_t>(width) * height, background);
}

Rgb Image::get(int x, int y) const {
  if (x < 0 || y < 0 || x >= width_ || y >= height_)
    throw std::out_of_range("Image::get: pixel (" + std::to_string(x) + ", " + std::to_string(y) +
                            ") outside a " + std::to_string(width_) + " x " +
                            std::to_string(height_) + " image");
  return pixels_[static_cast<size_t>(y) * width_ + x];
}

void Image::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
  pixels_[static_cast<size_t>(y) * width_ + x] = c;
}

void Image::blend(int x, int y, Rgb c, double alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_ || !(alpha > 0)) return;
  const double a = std::min(alpha, 1.0);
  Rgb& p = pixels_[static_cast<size_t>(y) * width_ + x];
  p = {mix(p.r, c.r, a), mix(p.g, c.g, a), mix(p.b, c.b, a)};
}

void Image::fill_rect(int x0, int y0, int x1, int y1, Rgb c) {
  if (x1 < x0) std::swap(x0, x1);
  if (y1 < y0) std::swap(y0, y1);
  x0 = std::max(x0, 0), y0 = std::max(y0, 0);
  x1 = std::min(x1, width_), y1 = std::min(y1, height_);
  for (int y = y0; y < y1; ++y)
    std::fill_n(pixels_.begin() + static_cast<ptrdiff_t>(y) * width_ + x0, std::max(x1 - x0, 0), c);
}

void Image::line(double x0, double y0, double x1, double y1, Rgb c, double width) {
  polyline({x0, x1}, {y0, y1}, c, width);
}

// Each pixel takes the largest coverage any segment gives it (distance from its centre to the
// segment against half the width, with a one-pixel ramp), then is blended once.
void Image::polyline(const std::vector<double>& x, const std::vector<double>& y, Rgb c,
                     double width) {
  if (x.size() != y.size())
    throw std::invalid_argument("Image::polyline: x and y differ in length (" +
                                std::to_string(x.size()) + " vs " + std::to_string(y.size()) + ")");
  if (!(width > 0) || !std::isfinite(width)) return;
  const double half = width / 2, reach = half + 1;
  struct Seg {
    double x0, y0, x1, y1;
  };
  std::vector<Seg> segs;
  double bx0 = width_, by0 = height_, bx1 = -1, by1 = -1;
  const auto finite = [&](size_t i) { return std::isfinite(x[i]) && std::isfinite(y[i]); };
  for (size_t i = 0; i < x.size(); ++i) {
    if (!finite(i)) continue;
    const bool has_next = i + 1 < x.size() && finite(i + 1);
    const bool lone = !has_next && (i == 0 || !finite(i - 1));
    if (!has_next && !lone) continue;
    Seg s{x[i], y[i], has_next ? x[i + 1] : x[i], has_next ? y[i + 1] : y[i]};
    if (!clip_segment(s.x0, s.y0, s.x1, s.y1, -reach, -reach, width_ - 1 + reach,
                      height_ - 1 + reach))
      continue;
    segs.push_back(s);
    bx0 = std::min({bx0, s.x0 - reach, s.x1 - reach});
    by0 = std::min({by0, s.y0 - reach, s.y1 - reach});
    bx1 = std::max({bx1, s.x0 + reach, s.x1 + reach});
    by1 = std::max({by1, s.y0 + reach, s.y1 + reach});
  }
  if (segs.empty()) return;
  const int ix0 = std::max(0, static_cast<int>(std::floor(bx0)));
  const int iy0 = std::max(0, static_cast<int>(std::floor(by0)));
  const int ix1 = std::min(width_ - 1, static_cast<int>(std::ceil(bx1)));
  const int iy1 = std::min(height_ - 1, static_cast<int>(std::ceil(by1)));
  if (ix1 < ix0 || iy1 < iy0) return;
  const int bw = ix1 - ix0 + 1;
  std::vector<float> cover(static_cast<size_t>(bw) * (iy1 - iy0 + 1), 0.0f);
  for (const Seg& s : segs) {
    const int sx0 = std::max(ix0, static_cast<int>(std::floor(std::min(s.x0, s.x1) - reach)));
    const int sx1 = std::min(ix1, static_cast<int>(std::ceil(std::max(s.x0, s.x1) + reach)));
    const int sy0 = std::max(iy0, static_cast<int>(std::floor(std::min(s.y0, s.y1) - reach)));
    const int sy1 = std::min(iy1, static_cast<int>(std::ceil(std::max(s.y0, s.y1) + reach)));
    for (int py = sy0; py <= sy1; ++py)
      for (int px = sx0; px <= sx1; ++px) {
        const double d = segment_distance(px, py, s.x0, s.y0, s.x1, s.y1);
        const float a = static_cast<float>(std::clamp(half + 0.5 - d, 0.0, 1.0));
        float& slot = cover[static_cast<size_t>(py - iy0) * bw + (px - ix0)];
        slot = std::max(slot, a);
      }
  }
  for (int py = iy0; py <= iy1; ++py)
    for (int px = ix0; px <= ix1; ++px)
      blend(px, py, c, cover[static_cast<size_t>(py - iy0) * bw + (px - ix0)]);
}

void Image::paste(const Image& src, int x, int y) {
  for (int sy = std::max(0, -y); sy < src.height_ && y + sy < height_; ++sy)
    for (int sx = std::max(0, -x); sx < src.width_ && x + sx < width_; ++sx)
      pixels_[static_cast<size_t>(y + sy) * width_ + (x + sx)] =
          src.pixels_[static_cast<size_t>(sy) * src.width_ + sx];
}

std::vector<uint8_t> Image::encode_png() const {
  std::vector<uint8_t> out;
  const auto sink = [](void* ctx, void* data, int size) {
    auto* bytes = static_cast<const uint8_t*>(data);
    static_cast<std::vector<uint8_t>*>(ctx)->insert(static_cast<std::vector<uint8_t>*>(ctx)->end(),
                                                    bytes, bytes + size);
  };
  if (!stbi_write_png_to_func(sink, &out, width_, height_, 3, pixels_.data(), width_ * 3))
    throw std::runtime_error("Image::encode_png: stb_image_write failed on a " +
                             std::to_string(width_) + " x " + std::to_string(height_) + " image");
  return out;
}

void Image::save_png(const std::string& path) const {
  namespace fs = std::filesystem;
  const std::vector<uint8_t> bytes = encode_png();
  const auto fail = [&](const std::string& what, int err) {
    throw std::runtime_error("save_png: " + what + " '" + path +
                             "': " + std::system_category().message(err));
  };
  const fs::path target(path);
  if (target.filename().empty()) fail("not a file path", EISDIR);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    std::string name = ".";  // appended piecewise: GCC 12 warns falsely on "." + string&&
    name += target.filename().string();
    name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    tmp = (dir / name).string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt >= 100))
      fail("cannot create a temporary file for", errno);
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("cannot write", err);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot write", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename the temporary file onto", err);
  }
}

namespace {

Image concat(const char* fn, const std::vector<Image>& images, int gap, bool across) {
  if (images.empty() || gap < 0)
    throw std::invalid_argument(std::string(fn) + ": needs at least one image and gap >= 0 (got " +
                                std::to_string(images.size()) + " images, gap " +
                                std::to_string(gap) + ")");
  int along = gap * static_cast<int>(images.size() - 1), other = 0;
  for (const Image& im : images) {
    along += across ? im.width() : im.height();
    other = std::max(other, across ? im.height() : im.width());
  }
  Image out(across ? along : other, across ? other : along);
  int at = 0;
  for (const Image& im : images) {
    out.paste(im, across ? at : 0, across ? 0 : at);
    at += (across ? im.width() : im.height()) + gap;
  }
  return out;
}

}  // namespace

Image hconcat(const std::vector<Image>& images, int gap) {
  return concat("hconcat", images, gap, true);
}

Image vconcat(const std::vector<Image>& images, int gap) {
  return concat("vconcat", images, gap, false);
}

// Eleven anchors along matplotlib's viridis (dark purple -> blue -> green -> yellow), linearly
// interpolated.
Rgb viridis(double t) {
  static constexpr std::array<Rgb, 11> kAnchors = {{{68, 1, 84},
                                                    {72, 36, 117},
                                                    {65, 68, 135},
                                                    {53, 95, 141},
                                                    {42, 120, 142},
                                                    {33, 145, 140},
                                                    {34, 168, 132},
                                                    {68, 191, 112},
                                                    {122, 209, 81},
                                                    {189, 223, 38},
                                                    {253, 231, 37}}};
  if (std::isnan(t)) return {128, 128, 128};
  const double u = std::clamp(t, 0.0, 1.0) * (kAnchors.size() - 1);
  const size_t i = std::min(static_cast<size_t>(u), kAnchors.size() - 2);
  const double f = u - static_cast<double>(i);
  const Rgb a = kAnchors[i], b = kAnchors[i + 1];
  return {mix(a.r, b.r, f), mix(a.g, b.g, f), mix(a.b, b.b, f)};
}

Rgb palette(int i) {
  static constexpr std::array<Rgb, 10> kColors = {{{31, 119, 180},
                                                   {255, 127, 14},
                                                   {44, 160, 44},
                                                   {214, 39, 40},
                                                   {148, 103, 189},
                                                   {140, 86, 75},
                                                   {227, 119, 194},
                                                   {127, 127, 127},
                                                   {188, 189, 34},
                                                   {23, 190, 207}}};
  const int n = static_cast<int>(kColors.size());
  return kColors[static_cast<size_t>(((i % n) + n) % n)];
}

}  // namespace sg::viz
