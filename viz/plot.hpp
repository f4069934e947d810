// sg::viz: a small PNG plotting library for research pictures at a glance (line plots, 2-D
// scatter, heatmaps, image grids), independent of the tensor library: std::vector<double> in,
// PNG out. Owns the public API; image.cpp (raster, PNG), font.cpp (bitmap font) and plot.cpp
// (the plots) implement it.
//
// Pixel coordinates: x to the right, y down, pixel (i, j) centred on the point (i, j).
// Bad arguments throw std::invalid_argument naming the function and the sizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sg::viz {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

class Image {
 public:
  Image(int width, int height, Rgb background = {255, 255, 255});
  int width() const { return width_; }
  int height() const { return height_; }
  Rgb get(int x, int y) const;                    // throws std::out_of_range outside the image
  void set(int x, int y, Rgb c);                  // ignores out-of-range pixels
  void blend(int x, int y, Rgb c, double alpha);  // alpha-composite (alpha clamped to [0, 1])
  // Fills the half-open box [x0, x1) x [y0, y1) (corners in any order), clipped to the image.
  void fill_rect(int x0, int y0, int x1, int y1, Rgb c);
  // Anti-aliased segment with round caps; width in pixels.
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1.5);
  // Anti-aliased connected line through (x[i], y[i]); a non-finite point breaks it (a gap).
  // Joints are drawn once (no darker dots where segments meet).
  void polyline(const std::vector<double>& x, const std::vector<double>& y, Rgb c,
                double width = 1.5);
  // Built-in 5x7 bitmap font (ASCII 32..126; other bytes draw as '?'), top-left anchored.
  // Each glyph advances 6 * scale pixels; descenders (g, j, p, q, y, _) reach one row lower.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1);
  // The same text rotated a quarter turn anticlockwise (reads bottom to top); (x, y) is the
  // top-left corner of its text_height x text_width box.
  void text_vertical(int x, int y, const std::string& s, Rgb c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);
  static int text_height(int scale = 1);  // 8 * scale: cap height 7 plus the descender row
  // Copies src with its top-left corner at (x, y), clipped to this image.
  void paste(const Image& src, int x, int y);
  // Writes atomically: temp file in the same directory, then rename over the target.
  // Throws std::runtime_error naming the path and the system error on failure.
  void save_png(const std::string& path) const;
  // The PNG file's bytes (what save_png writes).
  std::vector<uint8_t> encode_png() const;

 private:
  int width_, height_;
  std::vector<Rgb> pixels_;  // row-major
};

// Side by side (or stacked) with a gap, background white; top- (left-) aligned.
Image hconcat(const std::vector<Image>& images, int gap = 10);
Image vconcat(const std::vector<Image>& images, int gap = 10);

// Colours: a viridis-like map of t in [0, 1] (clamped; NaN gives grey 128), and a ten-colour
// categorical palette (tab10-like; i wraps around) for series.
Rgb viridis(double t);
Rgb palette(int i);

// "Nice" ticks (steps of 1, 2, 2.5 or 5 times a power of ten) inside [lo, hi], about `target`
// of them; and a compact label for a tick on that step ("0.5", "1e-3", "2000", "-2.5e5").
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
std::string format_tick(double v, double step);

// Where a plot put its data: the plotting area's top-left pixel (left, top), its size in
// pixels, and the data range it shows. px/py map data to pixel coordinates (for log_y, py
// takes the value itself, not its logarithm); the range's ends land on the area's edge pixels.
struct Frame {
  int left = 0, top = 0, width = 0, height = 0;
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  bool log_y = false;
  double px(double x) const;
  double py(double y) const;
};

// x may be left empty: then x = 0, 1, ..., y.size() - 1. color {0, 0, 0} is black; use
// palette(i) for distinct colours.
struct Series {
  std::vector<double> x, y;
  std::string label;
  Rgb color;
};
// Axis limits: the finite data's extent padded (x 2%, y 5%; in decades for log_y).
struct LineOptions {
  std::string title, xlabel, ylabel;
  bool log_y = false;
  int width = 640, height = 400;  // the whole image
};
// Axes with "nice" ticks and numeric tick labels, grid lines, legend when any label is non-empty;
// non-finite points are skipped (a gap); log_y ignores non-positive values.
Image line_plot(const std::vector<Series>& series, const LineOptions& o);
Frame line_plot_frame(const std::vector<Series>& series, const LineOptions& o);

// size is the side of the square plotting area; the image adds margins for title and ticks.
// Equal limits (xmin == xmax, or ymin == ymax) fit the data robustly: the extent of the points
// with finite x and y, leaving out values more than a quarter of the 0.5% .. 99.5% quantile
// range beyond it, padded 5%; when both axes are fitted and their spans are within a factor of 4,
// both get the larger span (equal aspect). Points outside the limits are not drawn; "k of N
// outside" is noted under the plot.
struct ScatterOptions {
  std::string title;
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  int size = 360;
  double alpha = 0.25;
  Rgb color = {31, 119, 180};
  int radius = 1;  // 0 draws single pixels
};
// xy holds N points interleaved (x0, y0, x1, y1, ...). Square plotting area with axes and ticks.
Image scatter_plot(const std::vector<double>& xy, const ScatterOptions& o);
Frame scatter_frame(const std::vector<double>& xy, const ScatterOptions& o);

// size is the side of the square plotting area. xmin == xmax (ymin == ymax) labels the axis with
// cell indices 0 .. nx (0 .. ny).
struct HeatmapOptions {
  std::string title;
  double xmin = 0, xmax = 0, ymin = 0, ymax = 0;
  int size = 360;
  bool colorbar = true;
  std::string colorbar_label;
};
// values: ny rows (row 0 = ymin .. row ny-1 = ymax) of nx columns each, row-major; NaN drawn grey
// (128, 128, 128). Colour range = finite min..max of values (+-inf clamp to the ends), viridis,
// colorbar with tick labels. Each area pixel shows the cell under its centre (no smoothing).
Image heatmap(const std::vector<double>& values, int nx, int ny, const HeatmapOptions& o);
Frame heatmap_frame(int nx, int ny, const HeatmapOptions& o);

// Tile k (row k / cols, column k % cols) has its top-left pixel at
//   x = pad + (k % cols) * (w * scale + pad),  y = top + pad + (k / cols) * (h * scale + pad),
// where top = 0 without a title and grid_title_height() with one. Background white.
struct GridOptions {
  int cols = 8;
  int scale = 4;
  double lo = 0, hi = 1;
  int pad = 2;
  std::string title;
};
// n grayscale images of h x w (row-major, n*h*w values), values mapped lo..hi -> black..white
// (clamped; NaN drawn magenta), each pixel drawn as scale x scale block, in a grid with padding.
// cols is capped at n.
Image image_grid(const std::vector<double>& pixels, int n, int h, int w, const GridOptions& o);
int grid_title_height();

}  // namespace sg::viz
