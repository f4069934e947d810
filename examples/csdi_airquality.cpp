// Example (issue 17 item 6, until `scoregrad impute` lands): CSDI trained on R's airquality
// (153 days x Ozone, Solar.R, Wind, Temp, 44 natural gaps), evaluated on held-out test entries
// against four baselines (per-feature mean, linear interpolation, LOCF, a per-feature Gaussian),
// over several seeds; prints a markdown table of mean +- standard error over the seeds.
//
//   sg_example_csdi_airquality [steps=1000] [seeds=3] [samples=100]
//
// Data: the first 50% of days train (windows of 15 days, stride 1), the next 10% validate (one
// window), the last 40% test (windows of 15 days, stride 15). The net: 2 residual layers of 32
// channels, 4 heads, feed-forward 64; batches of 16, lr 1e-3. The protocol is in
// csdi_table_eval.hpp (shared with csdi_co2.cpp).
#include <cstdlib>

#include "csdi_table_eval.hpp"

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 1000;
  const int seeds = argc > 2 ? std::atoi(argv[2]) : 3;
  const int64_t samples = argc > 3 ? std::atoll(argv[3]) : 100;
  sg::examples::CsdiTableSetup su;  // a small CSDI: 2 residual layers of 32 channels
  su.name = "airquality", su.unit = "days", su.table = sg::nn::load_airquality();
  su.train_fraction = 0.5, su.validation_fraction = 0.1, su.window = 15, su.train_stride = 1;
  return sg::examples::run_csdi_table(su, steps, seeds, samples);
}
