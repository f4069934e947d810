// PNG pictures of the scoregrad command (pictures.hpp).
#include "cli/pictures.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autodiff/ops/ops.hpp"
#include "nn/checkpoint.hpp"
#include "viz/plot.hpp"

namespace sg::cli {

void draw_loss_curve(const std::string& metrics_file, const std::string& png,
                     const std::string& objective) {
  std::ifstream in(metrics_file);
  std::vector<double> steps, loss;
  std::string line;
  while (std::getline(in, line)) {
    if (!nlohmann::json::accept(line)) continue;
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("step") || !j.contains("loss")) continue;
    steps.push_back(j["step"].get<double>());
    loss.push_back(j["loss"].get<double>());
  }
  if (steps.empty()) return;
  // Centred moving average over about a twentieth of the points.
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(loss.size()),
                       half = std::max<std::ptrdiff_t>(1, n / 40);
  std::vector<double> smooth(loss.size());
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    const std::ptrdiff_t a = std::max<std::ptrdiff_t>(0, i - half), b = std::min(n, i + half + 1);
    double sum = 0;
    for (std::ptrdiff_t k = a; k < b; ++k) sum += loss[static_cast<std::size_t>(k)];
    smooth[static_cast<std::size_t>(i)] = sum / static_cast<double>(b - a);
  }
  bool positive = true;
  for (double l : loss) positive = positive && l > 0;
  viz::LineOptions o{.title = "training loss (" + objective + ")",
                     .xlabel = "step",
                     .ylabel = "loss",
                     .log_y = positive};
  viz::line_plot({{steps, loss, "logged mean", viz::palette(0)},
                  {steps, smooth, "moving average", viz::palette(1)}},
                 o)
      .save_png(png);
}

void draw_samples(const Tensor& samples, const Tensor& data, bool images, const std::string& png,
                  const std::string& title) {
  if (images) {
    const int n = static_cast<int>(std::min<int64_t>(64, std::min(samples.dim(0), data.dim(0))));
    const int h = static_cast<int>(samples.dim(-2)), w = static_cast<int>(samples.dim(-1));
    auto grid = [&](const Tensor& x, const std::string& t) {
      return viz::image_grid(slice(x, 0, 0, n).to_vector(), n, h, w,
                             {.cols = 8, .scale = 4, .lo = -1, .hi = 1, .title = t});
    };
    viz::hconcat({grid(data, "held-out data"), grid(samples, title)}, 16).save_png(png);
    return;
  }
  const std::vector<double> d = data.to_vector(), s = samples.to_vector();
  // Both panels on the data's robust range, so the comparison is like for like.
  const viz::Frame f = viz::scatter_frame(d, {});
  viz::ScatterOptions o{.xmin = f.xmin, .xmax = f.xmax, .ymin = f.ymin, .ymax = f.ymax};
  o.title = "held-out data";
  const viz::Image left = viz::scatter_plot(d, o);
  o.title = title;
  o.color = viz::palette(1);
  viz::hconcat({left, viz::scatter_plot(s, o)}, 16).save_png(png);
}

void draw_density(const std::vector<double>& logp, int n, double lo, double hi, const Tensor& data,
                  const std::string& png, const std::string& title) {
  std::vector<double> density(logp.size());
  for (std::size_t i = 0; i < logp.size(); ++i) density[i] = std::exp(logp[i]);
  std::vector<double> hist(static_cast<std::size_t>(n) * static_cast<std::size_t>(n), 0.0);
  const std::vector<double> d = data.to_vector();
  const double cell = (hi - lo) / n;
  const double count = static_cast<double>(d.size() / 2);
  for (std::size_t i = 0; i + 1 < d.size(); i += 2) {
    const int cx = static_cast<int>(std::floor((d[i] - lo) / cell));
    const int cy = static_cast<int>(std::floor((d[i + 1] - lo) / cell));
    if (cx >= 0 && cx < n && cy >= 0 && cy < n)
      hist[static_cast<std::size_t>(cy * n + cx)] += 1.0 / (count * cell * cell);
  }
  viz::HeatmapOptions o{.title = title, .xmin = lo, .xmax = hi, .ymin = lo, .ymax = hi};
  o.colorbar_label = "density";
  const viz::Image model = viz::heatmap(density, n, n, o);
  o.title = "training data histogram";
  viz::hconcat({model, viz::heatmap(hist, n, n, o)}, 16).save_png(png);
}

void draw_image_panels(const std::vector<Tensor>& panels, const std::vector<std::string>& titles,
                       const std::string& png) {
  std::vector<viz::Image> grids;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const Tensor& x = panels[i];
    grids.push_back(viz::image_grid(x.to_vector(), static_cast<int>(x.dim(0)),
                                    static_cast<int>(x.dim(-2)), static_cast<int>(x.dim(-1)),
                                    {.cols = 4, .scale = 6, .lo = 0, .hi = 1, .title = titles[i]}));
  }
  const std::vector<uint8_t> bytes = viz::hconcat(grids, 16).encode_png();
  nn::write_file_atomic(png, std::string(bytes.begin(), bytes.end()));
}

}  // namespace sg::cli
