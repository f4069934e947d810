// The PNG pictures of the scoregrad command, drawn with sg::viz: the loss curve from
// metrics.jsonl, samples beside data (2-D scatter or digit grids), and the model's density
// beside a histogram of the data for 2-D models.
#pragma once
#include <string>
#include <vector>

#include "autodiff/core/tensor.hpp"

namespace sg::cli {

// Training loss (and its moving average) against step, from the metrics file.
void draw_loss_curve(const std::string& metrics_file, const std::string& png,
                     const std::string& objective);
// 2-D: data and samples as scatter plots on the same axes. Images in [-1, 1]: digit grids.
void draw_samples(const Tensor& samples, const Tensor& data, bool images, const std::string& png,
                  const std::string& title);
// A square grid of model densities exp(log p) (values row-major, row 0 at ymin) beside a
// normalized histogram of `data` (the training data: many points, a smooth picture) on the
// same grid.
void draw_density(const std::vector<double>& logp, int n, double lo, double hi, const Tensor& data,
                  const std::string& png, const std::string& title);

// Digits in [0, 1] (each [n, 1, h, w]) as titled grids side by side, e.g. clean, attacked and
// purified images of the same samples; the PNG is written atomically.
void draw_image_panels(const std::vector<Tensor>& panels, const std::vector<std::string>& titles,
                       const std::string& png);

}  // namespace sg::cli
