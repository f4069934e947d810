// Example (issue 17 item 6, until `scoregrad impute` lands): CSDI trained on the weekly Mauna
// Loa CO2 series (2284 weeks, 1958-2001, one feature, 59 natural gaps), evaluated on held-out
// test entries against four baselines (per-feature mean, linear interpolation, LOCF, a
// per-feature Gaussian), over several seeds; prints a markdown table of mean +- standard error
// over the seeds.
//
//   sg_example_csdi_co2 [steps=1000] [seeds=3] [samples=50] [window=52] [centre=0]
//
// Data: the first 50% of weeks train (windows of `window` weeks, a year by default, stride 1),
// the next 10% validate, the last 40% test (windows of `window` weeks, stride `window`). The net:
// 2 residual layers of 32 channels, 4 heads, feed-forward 64 (with one feature the feature
// transformer is skipped); batches of 16, lr 1e-3. The protocol is in csdi_table_eval.hpp
// (shared with csdi_airquality.cpp). centre=1: CSDI sees every window centred on the mean of its
// visible entries (the series rises from 315 to 372 ppm, so the test weeks lie above every
// training week; see CsdiTableSetup::centre_windows).
#include <cstdlib>

#include "csdi_table_eval.hpp"

int main(int argc, char** argv) {
  const int64_t steps = argc > 1 ? std::atoll(argv[1]) : 1000;
  const int seeds = argc > 2 ? std::atoi(argv[2]) : 3;
  const int64_t samples = argc > 3 ? std::atoll(argv[3]) : 50;
  sg::examples::CsdiTableSetup su;  // a small CSDI: 2 residual layers of 32 channels
  su.name = "co2", su.unit = "weeks", su.table = sg::nn::load_co2();
  su.train_fraction = 0.5, su.validation_fraction = 0.1, su.train_stride = 1;
  su.window = argc > 4 ? std::atoll(argv[4]) : 52;
  su.crps_digits = 5, su.error_digits = 3;  // ppm; CRPS is normalised by sum |y| (~355 ppm)
  su.centre_windows = argc > 5 && std::atoi(argv[5]) != 0;
  return sg::examples::run_csdi_table(su, steps, seeds, samples);
}
