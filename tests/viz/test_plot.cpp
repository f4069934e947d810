// sg::viz: raster primitives (set/blend/fill/anti-aliased lines, text inside its measured box),
// pixels of each plot kind landing where its Frame says, colormap ends on heatmap corners,
// image_grid values and layout, ticks and their labels, PNG files that decode back to the
// image, atomic saves, and the invalid_argument errors for bad sizes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "viz/plot.hpp"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

using namespace sg::viz;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

const Rgb kWhite{255, 255, 255}, kRed{200, 0, 0};

// At least 70% of the way from white to c in every channel: ink of an anti-aliased line whose
// centre is within half a pixel.
bool tinted(Rgb got, Rgb c) {
  const auto near = [](int g, int t) { return std::abs(g - t) <= 0.3 * (255 - t) + 1; };
  return near(got.r, c.r) && near(got.g, c.g) && near(got.b, c.b);
}

int count_color(const Image& im, Rgb c) {
  int n = 0;
  for (int y = 0; y < im.height(); ++y)
    for (int x = 0; x < im.width(); ++x) n += im.get(x, y) == c;
  return n;
}

// Non-white pixels inside and outside the box [x0, x0 + w) x [y0, y0 + h).
std::pair<int, int> ink_in_box(const Image& im, int x0, int y0, int w, int h) {
  int inside = 0, outside = 0;
  for (int y = 0; y < im.height(); ++y)
    for (int x = 0; x < im.width(); ++x) {
      if (im.get(x, y) == kWhite) continue;
      (x >= x0 && x < x0 + w && y >= y0 && y < y0 + h ? inside : outside)++;
    }
  return {inside, outside};
}

// A fresh empty directory under the system temp folder, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("sg_viz_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) |
         b[at + 3];
}

}  // namespace

TEST_CASE("Image: set, get, blend and fill_rect, clipped at the edges") {
  Image im(10, 6, {1, 2, 3});
  CHECK(im.width() == 10);
  CHECK(im.height() == 6);
  CHECK(im.get(9, 5) == Rgb{1, 2, 3});
  im.set(2, 3, kRed);
  CHECK(im.get(2, 3) == kRed);
  im.set(-1, 0, kRed);
  im.set(10, 0, kRed);
  im.set(0, 6, kRed);
  CHECK(count_color(im, kRed) == 1);
  CHECK_THROWS_AS(im.get(10, 0), std::out_of_range);
  CHECK_THROWS_AS(im.get(0, -1), std::out_of_range);

  Image b(4, 4, {0, 0, 0});
  b.blend(1, 1, kWhite, 0.5);
  CHECK(b.get(1, 1) == Rgb{128, 128, 128});
  b.blend(2, 2, kWhite, 2.0);  // clamped to 1
  CHECK(b.get(2, 2) == kWhite);
  b.blend(3, 3, kWhite, 0.0);
  b.blend(7, 7, kWhite, 1.0);
  CHECK(b.get(3, 3) == Rgb{0, 0, 0});

  Image f(8, 8);
  f.fill_rect(6, 5, 2, 1, kRed);  // corners in any order, half-open box [2, 6) x [1, 5)
  CHECK(count_color(f, kRed) == 16);
  CHECK(f.get(2, 1) == kRed);
  CHECK(f.get(5, 4) == kRed);
  CHECK(f.get(6, 4) == kWhite);
  CHECK(f.get(5, 5) == kWhite);
  f.fill_rect(-5, -5, 100, 1, kRed);
  CHECK(f.get(7, 0) == kRed);
}

TEST_CASE("Image: anti-aliased lines cover their width and polyline gaps at NaN") {
  Image im(60, 30);
  im.line(5, 10, 50, 10, kRed, 1.5);
  CHECK(im.get(20, 10) == kRed);    // on the line
  const Rgb edge = im.get(20, 11);  // a quarter covered
  CHECK(edge.r > kRed.r);
  CHECK(edge.r < 255);
  CHECK(im.get(20, 13) == kWhite);
  CHECK(im.get(55, 10) == kWhite);  // beyond the round cap

  Image p(60, 30);
  p.polyline({0, 10, 20, 30, 40, 50}, {15, 15, NAN, 15, 15, 15}, kRed, 2.0);
  CHECK(p.get(5, 15) == kRed);
  CHECK(p.get(45, 15) == kRed);
  CHECK(p.get(20, 15) == kWhite);  // the NaN point and its two segments are gaps
  CHECK(p.get(15, 15) == kWhite);
  CHECK(p.get(25, 15) == kWhite);
  CHECK_THROWS_AS(p.polyline({0, 1}, {0}, kRed), std::invalid_argument);
  // Far-away end points are clipped, not a problem.
  p.line(-1e300, 5, 1e300, 5, kRed, 1.0);
  CHECK(p.get(30, 5) == kRed);
}

TEST_CASE("Image: text draws ink only inside its text_width x text_height box") {
  for (int scale : {1, 3}) {
    const std::string s = "Loss 0.5e-3 (x/y): gjpqy_ = 100%";
    Image im(Image::text_width(s, scale) + 40, Image::text_height(scale) + 40);
    const int x0 = 20, y0 = 20, w = Image::text_width(s, scale), h = Image::text_height(scale);
    im.text(x0, y0, s, {0, 0, 0}, scale);
    const auto [inside, outside] = ink_in_box(im, x0, y0, w, h);
    CHECK(outside == 0);
    CHECK(inside > 100 * scale * scale);
    // Every visible glyph leaves ink in its own cell.
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == ' ') continue;
      Image cell(10 * scale, 10 * scale);
      cell.text(0, 0, std::string(1, s[i]), {0, 0, 0}, scale);
      CHECK(count_color(cell, kWhite) < cell.width() * cell.height());
    }
    // The rotated version stays inside the rotated box.
    Image v(h + 40, w + 40);
    v.text_vertical(x0, y0, s, {0, 0, 0}, scale);
    const auto [vin, vout] = ink_in_box(v, x0, y0, h, w);
    CHECK(vout == 0);
    CHECK(vin == inside);
  }
  CHECK(Image::text_width("") == 0);
  CHECK(Image::text_width("ab") == 11);
  CHECK(Image::text_width("ab", 2) == 22);
}

TEST_CASE("Ticks: nice steps and compact labels") {
  const auto unit = nice_ticks(0, 1, 6);
  REQUIRE(unit.size() == 6);
  for (size_t i = 0; i < unit.size(); ++i) CHECK(unit[i] == Approx(0.2 * i).margin(1e-12));
  CHECK(nice_ticks(-3.3, 3.3, 7) == std::vector<double>{-3, -2, -1, 0, 1, 2, 3});
  CHECK(nice_ticks(5, 5) == std::vector<double>{5});
  CHECK(nice_ticks(0, NAN).empty());
  for (double lo : {-0.3, 1e-7, 123.0, -5e4})
    for (double span : {1e-6, 0.37, 1.0, 42.0, 7e5}) {
      const auto t = nice_ticks(lo, lo + span, 6);
      REQUIRE(t.size() >= 2);
      CHECK(t.size() <= 11);
      const double step = t[1] - t[0];
      const double mant = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
      CHECK((std::fabs(mant - 1) < 1e-3 || std::fabs(mant - 2) < 1e-3 ||
             std::fabs(mant - 2.5) < 1e-3 || std::fabs(mant - 5) < 1e-3));
      CHECK(t.front() >= lo - span * 1e-9);
      CHECK(t.back() <= lo + span + span * 1e-9);
      CHECK(t.front() - step < lo);
      CHECK(t.back() + step > lo + span);
    }

  CHECK(format_tick(0.5, 0.1) == "0.5");
  CHECK(format_tick(2000, 500) == "2000");
  CHECK(format_tick(0.001, 0.001) == "1e-3");
  CHECK(format_tick(2.5e-4, 5e-5) == "2.5e-4");
  CHECK(format_tick(-1.5, 0.5) == "-1.5");
  CHECK(format_tick(2.0, 0.5) == "2.0");
  CHECK(format_tick(1e5, 1e5) == "1e5");
  CHECK(format_tick(-2.5e5, 5e4) == "-2.5e5");
  CHECK(format_tick(1e-17, 0.1) == "0");
  CHECK(format_tick(12, 2) == "12");
  CHECK(format_tick(0.075, 0.025) == "0.075");
  CHECK(format_tick(0.01, 0.01) == "0.01");
  CHECK(format_tick(0.015, 0.005) == "1.5e-2");
  CHECK(format_tick(99999.5, 0.5) == "99999.5");
}

TEST_CASE("Colours: viridis ends, NaN grey, palette wraps") {
  CHECK(viridis(0) == Rgb{68, 1, 84});
  CHECK(viridis(1) == Rgb{253, 231, 37});
  CHECK(viridis(-3) == viridis(0));
  CHECK(viridis(7) == viridis(1));
  CHECK(viridis(NAN) == Rgb{128, 128, 128});
  CHECK(palette(0) == palette(10));
  CHECK(palette(-1) == palette(9));
  CHECK(!(palette(0) == palette(1)));
}

TEST_CASE("scatter_plot: a single point darkens exactly the pixel its Frame names") {
  ScatterOptions o;
  o.xmin = 0, o.xmax = 1, o.ymin = 0, o.ymax = 1;
  o.radius = 0, o.alpha = 1.0, o.color = kRed;
  const std::vector<double> xy = {0.25, 0.75, 5.0, 5.0};  // the second point is outside
  const Frame f = scatter_frame(xy, o);
  CHECK(f.width == o.size);
  CHECK(f.height == o.size);
  const Image im = scatter_plot(xy, o);
  const int px = static_cast<int>(std::lround(f.px(0.25)));
  const int py = static_cast<int>(std::lround(f.py(0.75)));
  CHECK(px == f.left + static_cast<int>(std::lround(0.25 * (o.size - 1))));
  CHECK(py == f.top + static_cast<int>(std::lround(0.25 * (o.size - 1))));
  CHECK(im.get(px, py) == kRed);
  CHECK(count_color(im, kRed) == 1);

  // With alpha 0.5 and radius 1 a 3x3 blob is half-tinted, its centre included.
  o.alpha = 0.5, o.radius = 1;
  const Image blob = scatter_plot({0.5, 0.5}, o);
  const int bx = static_cast<int>(std::lround(f.px(0.5))),
            by = static_cast<int>(std::lround(f.py(0.5)));
  const Rgb half{228, 128, 128};
  CHECK(blob.get(bx, by) == half);
  CHECK(blob.get(bx + 1, by + 1) == half);
  CHECK(!(blob.get(bx + 2, by) == half));
}

TEST_CASE("scatter_plot: fitted limits ignore non-finite values and far outliers") {
  std::vector<double> xy;
  for (int i = 0; i < 1000; ++i) xy.push_back(std::sin(i * 0.7)), xy.push_back(std::cos(i * 1.3));
  xy.push_back(1e9), xy.push_back(0);
  xy.push_back(NAN), xy.push_back(0);
  xy.push_back(0), xy.push_back(INFINITY);
  const Frame f = scatter_frame(xy, ScatterOptions{});
  CHECK(f.xmin < -0.99);
  CHECK(f.xmax > 0.99);
  CHECK(f.xmax < 2);
  CHECK(f.ymin < -0.99);
  CHECK(f.ymax < 2);
  CHECK(f.xmax - f.xmin == Approx(f.ymax - f.ymin));  // equal aspect
  CHECK_NOTHROW(scatter_plot(xy, ScatterOptions{}));
  CHECK_NOTHROW(scatter_plot({}, ScatterOptions{}));
  // Very different spreads keep their own spans; one fixed axis leaves the other fitted.
  std::vector<double> wide;
  for (int i = 0; i <= 100; ++i) wide.push_back(i * 10.0), wide.push_back(std::sin(i));
  const Frame w = scatter_frame(wide, ScatterOptions{});
  CHECK(w.xmax - w.xmin > 1000);
  CHECK(w.ymax - w.ymin < 3);
  ScatterOptions fixed;
  fixed.xmin = -5, fixed.xmax = 5;
  const Frame fx = scatter_frame(wide, fixed);
  CHECK(fx.xmin == -5);
  CHECK(fx.xmax == 5);
  CHECK(fx.ymax - fx.ymin < 3);
}

TEST_CASE("heatmap: corners take the colormap ends, NaN is grey, rows go up") {
  // 3 x 2 cells; row 0 is ymin (bottom).
  const std::vector<double> v = {0, 1, 2, 3, NAN, 5};
  HeatmapOptions o;
  o.xmin = -1, o.xmax = 1, o.ymin = 0, o.ymax = 2;
  o.size = 120;
  const Frame f = heatmap_frame(3, 2, o);
  const Image im = heatmap(v, 3, 2, o);
  const int l = f.left, r = f.left + f.width - 1, t = f.top, b = f.top + f.height - 1;
  CHECK(im.get(l, b) == viridis(0));  // row 0, column 0: the minimum
  CHECK(im.get(r, t) == viridis(1));  // row 1, column 2: the maximum
  CHECK(im.get(r, b) == viridis(0.4));
  CHECK(im.get(l + f.width / 2, t) == Rgb{128, 128, 128});
  CHECK(im.get(l, t) == viridis(0.6));
  // The colorbar widens the image; without it the area stays the same.
  HeatmapOptions nb = o;
  nb.colorbar = false;
  const Image plain = heatmap(v, 3, 2, nb);
  CHECK(plain.width() < im.width());
  CHECK(plain.get(l, b) == viridis(0));
  // Constant values take the middle colour.
  CHECK(heatmap(std::vector<double>(4, 2.0), 2, 2, o).get(l, t) == viridis(0.5));
}

TEST_CASE("image_grid: values map lo..hi to grey levels at the documented tile origins") {
  const int n = 3, h = 2, w = 3;
  std::vector<double> px(n * h * w, 0.0);
  // Image 2 (row 1, column 0 with cols = 2): a ramp with clamping at both ends.
  const double ramp[6] = {-1.0, 0.0, 0.5, 1.0, 2.0, 0.25};
  for (int i = 0; i < 6; ++i) px[2 * h * w + i] = ramp[i];
  px[1 * h * w + 4] = NAN;  // image 1, row 1, column 1
  GridOptions o;
  o.cols = 2, o.scale = 2, o.pad = 1;
  const Image im = image_grid(px, n, h, w, o);
  CHECK(im.width() == o.pad + 2 * (w * o.scale + o.pad));
  CHECK(im.height() == o.pad + 2 * (h * o.scale + o.pad));
  const int x0 = o.pad, y0 = o.pad + (h * o.scale + o.pad);
  const uint8_t expect[6] = {0, 0, 128, 255, 255, 64};
  for (int i = 0; i < h; ++i)
    for (int j = 0; j < w; ++j) {
      const uint8_t g = expect[i * w + j];
      for (int dy = 0; dy < o.scale; ++dy)
        for (int dx = 0; dx < o.scale; ++dx)
          CHECK(im.get(x0 + j * o.scale + dx, y0 + i * o.scale + dy) == Rgb{g, g, g});
    }
  const int x1 = o.pad + (w * o.scale + o.pad);
  CHECK(im.get(x1 + 1 * o.scale, o.pad + 1 * o.scale) == Rgb{255, 0, 255});
  CHECK(im.get(0, 0) == kWhite);  // padding
  // A title shifts the grid down by grid_title_height().
  o.title = "samples";
  const Image titled = image_grid(px, n, h, w, o);
  CHECK(titled.height() == im.height() + grid_title_height());
  CHECK(titled.get(x0, y0 + grid_title_height()) == Rgb{0, 0, 0});
  CHECK(titled.get(x0 + 2 * o.scale, y0 + grid_title_height()) == Rgb{128, 128, 128});
}

TEST_CASE("line_plot: series pixels land where the Frame says, with gaps at non-finite points") {
  Series s{{0, 1, 2, 3, 4, 5, 6}, {1, 1, 1, NAN, 3, 3, 3}, "", kRed};
  LineOptions o;
  o.title = "loss", o.xlabel = "step", o.ylabel = "value";
  const Frame f = line_plot_frame({s}, o);
  const Image im = line_plot({s}, o);
  CHECK(im.width() == o.width);
  CHECK(im.height() == o.height);
  CHECK(f.xmin < 0);
  CHECK(f.xmax > 6);
  const auto at = [&](double x, double y) {
    return im.get(static_cast<int>(std::lround(f.px(x))), static_cast<int>(std::lround(f.py(y))));
  };
  CHECK(tinted(at(0.5, 1), kRed));
  CHECK(tinted(at(5.5, 3), kRed));
  CHECK(at(3, 2).g > 200);  // the gap (white or grid)
  CHECK(at(3, 1).g > 200);
  CHECK(at(0.5, 2).g > 200);

  // Empty x means 0, 1, 2, ...; log_y skips non-positive values and maps decades evenly.
  Series l{{}, {1, 10, -1, 0, 100}, "decades", palette(1)};
  o.log_y = true;
  const Frame lf = line_plot_frame({l}, o);
  CHECK(lf.log_y);
  CHECK(lf.ymin < 1);
  CHECK(lf.ymax > 100);
  CHECK(lf.py(10) - lf.py(100) == Approx(lf.py(1) - lf.py(10)));
  CHECK(lf.xmax > 4);
  const Image li = line_plot({l}, o);
  CHECK(tinted(li.get(static_cast<int>(std::lround(lf.px(0.5))),
                      static_cast<int>(std::lround(lf.py(std::sqrt(10.0))))),
               palette(1)));
  // No data at all still draws axes.
  CHECK_NOTHROW(line_plot({}, LineOptions{}));
  CHECK_NOTHROW(line_plot({Series{{}, {NAN, INFINITY}, "x", kRed}}, LineOptions{}));
}

TEST_CASE("Plots survive extreme and degenerate data") {
  const double big = 1.7e308, tiny = 4e-320;
  const std::vector<std::vector<double>> cases = {
      {big, -big}, {tiny, 2 * tiny}, {1e20, std::nextafter(1e20, 1e21)}, {3, 3, 3}, {-5}, {}};
  for (const auto& y : cases) {
    INFO("first value " << (y.empty() ? 0.0 : y[0]));
    for (bool log_y : {false, true}) {
      LineOptions o;
      o.log_y = log_y;
      CHECK_NOTHROW(line_plot({Series{{}, y, "y", kRed}}, o));
    }
    std::vector<double> xy;
    for (double v : y) xy.push_back(v), xy.push_back(-v);
    CHECK_NOTHROW(scatter_plot(xy, ScatterOptions{}));
    if (!y.empty()) {
      HeatmapOptions h;
      h.size = 50;
      CHECK_NOTHROW(heatmap(y, static_cast<int>(y.size()), 1, h));
    }
  }
  const std::vector<double> inf_cells = {INFINITY, -INFINITY, NAN, 1};
  CHECK_NOTHROW(heatmap(inf_cells, 2, 2, HeatmapOptions{}));
}

TEST_CASE("hconcat and vconcat place images side by side with a white gap") {
  const Image a(3, 2, kRed), b(4, 5, {0, 0, 0});
  const Image h = hconcat({a, b}, 2);
  CHECK(h.width() == 9);
  CHECK(h.height() == 5);
  CHECK(h.get(2, 1) == kRed);
  CHECK(h.get(3, 1) == kWhite);
  CHECK(h.get(5, 4) == Rgb{0, 0, 0});
  CHECK(h.get(0, 4) == kWhite);
  const Image v = vconcat({a, b}, 1);
  CHECK(v.width() == 4);
  CHECK(v.height() == 8);
  CHECK(v.get(0, 1) == kRed);
  CHECK(v.get(0, 2) == kWhite);
  CHECK(v.get(3, 3) == Rgb{0, 0, 0});
  CHECK(v.get(3, 0) == kWhite);
}

TEST_CASE("save_png: a valid PNG that decodes back to the image, written atomically") {
  TempDir dir;
  Image im(37, 21, {10, 20, 30});
  im.set(0, 0, kRed);
  im.set(36, 20, {1, 2, 3});
  const fs::path p = dir.path / "plot.png";
  im.save_png(p.string());
  const auto bytes = read_bytes(p);
  REQUIRE(bytes.size() > 33);
  const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(std::equal(signature, signature + 8, bytes.begin()));
  CHECK(std::string(bytes.begin() + 12, bytes.begin() + 16) == "IHDR");
  CHECK(be32(bytes, 16) == 37);
  CHECK(be32(bytes, 20) == 21);
  CHECK(bytes == im.encode_png());

  int w = 0, h = 0, comp = 0;
  unsigned char* data =
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 3);
  REQUIRE(data != nullptr);
  CHECK(w == 37);
  CHECK(h == 21);
  bool same = true;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const unsigned char* q = data + 3 * (y * w + x);
      same = same && Rgb{q[0], q[1], q[2]} == im.get(x, y);
    }
  stbi_image_free(data);
  CHECK(same);

  // Overwriting replaces the file and leaves nothing else in the directory.
  Image(5, 6).save_png(p.string());
  CHECK(be32(read_bytes(p), 16) == 5);
  CHECK(dir.entries() == std::vector<std::string>{"plot.png"});
}

TEST_CASE("save_png: failures throw runtime_error naming the path and leave no temp file") {
  TempDir dir;
  const Image im(4, 4);
  const std::string missing = (dir.path / "no_such_dir" / "x.png").string();
  CHECK_THROWS_AS(im.save_png(missing), std::runtime_error);
  CHECK_THROWS_WITH(im.save_png(missing), Contains(missing) && Contains("No such file"));
  // A directory in the way of the target: the rename fails, the temp file is removed.
  fs::create_directory(dir.path / "taken.png");
  const std::string taken = (dir.path / "taken.png").string();
  CHECK_THROWS_WITH(im.save_png(taken), Contains(taken));
  CHECK(dir.entries() == std::vector<std::string>{"taken.png"});
  CHECK(fs::is_directory(dir.path / "taken.png"));
}

TEST_CASE("Invalid sizes throw invalid_argument naming the function and the sizes") {
  CHECK_THROWS_AS(Image(0, 5), std::invalid_argument);
  CHECK_THROWS_WITH(Image(-2, 5), Contains("Image") && Contains("-2 x 5"));
  CHECK_THROWS_AS(hconcat({}), std::invalid_argument);
  CHECK_THROWS_AS(vconcat({Image(2, 2)}, -1), std::invalid_argument);

  CHECK_THROWS_WITH(image_grid(std::vector<double>(10), 2, 2, 3, GridOptions{}),
                    Contains("image_grid") && Contains("10 values") && Contains("n 2"));
  CHECK_THROWS_AS(image_grid({}, 0, 2, 2, GridOptions{}), std::invalid_argument);
  GridOptions g;
  g.lo = 1, g.hi = 1;
  CHECK_THROWS_WITH(image_grid(std::vector<double>(4), 1, 2, 2, g), Contains("image_grid"));
  g = GridOptions{};
  g.scale = 0;
  CHECK_THROWS_AS(image_grid(std::vector<double>(4), 1, 2, 2, g), std::invalid_argument);

  CHECK_THROWS_WITH(heatmap(std::vector<double>(5), 2, 3, HeatmapOptions{}),
                    Contains("heatmap") && Contains("5 values") && Contains("nx 2"));
  CHECK_THROWS_AS(heatmap({}, 0, 0, HeatmapOptions{}), std::invalid_argument);
  HeatmapOptions hm;
  hm.xmin = 1, hm.xmax = 0;
  CHECK_THROWS_WITH(heatmap(std::vector<double>(4), 2, 2, hm), Contains("heatmap"));

  CHECK_THROWS_WITH(scatter_plot({1, 2, 3}, ScatterOptions{}),
                    Contains("scatter_plot") && Contains("3 values"));
  ScatterOptions so;
  so.size = 0;
  CHECK_THROWS_AS(scatter_plot({}, so), std::invalid_argument);
  so = ScatterOptions{};
  so.ymin = NAN;
  CHECK_THROWS_AS(scatter_plot({}, so), std::invalid_argument);

  CHECK_THROWS_WITH(line_plot({Series{{1, 2, 3}, {1, 2}, "", kRed}}, LineOptions{}),
                    Contains("line_plot") && Contains("3 x values") && Contains("2 y values"));
  LineOptions lo;
  lo.width = 0;
  CHECK_THROWS_WITH(line_plot({}, lo), Contains("line_plot") && Contains("0 x 400"));
  lo.width = 60, lo.height = 40;
  CHECK_THROWS_WITH(line_plot({}, lo), Contains("line_plot") && Contains("60 x 40"));
}
