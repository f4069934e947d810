// Tables of numeric series with missing entries, as CSDI imputes them: loading (CSV with NA
// tokens), the shipped series (R's airquality, Mauna Loa co2), per-feature standardisation over
// the observed entries only, train/validation/test splits by time, windows of fixed length,
// and seeded held-out target masks drawn from the observed entries.
//
//   sg::nn::MaskedTable air = sg::nn::load_airquality();          // [153, 4], 44 gaps
//   auto split = sg::nn::split_by_time(air, 0.7, 0.1);
//   auto scaler = sg::nn::Standardizer::fit(split.train);        // train statistics only
//   auto w = sg::nn::make_windows(scaler.apply(split.test), 31, 31);
//   sg::Generator gen(1);
//   sg::Tensor target = sg::nn::holdout_mask(w.observed, 0.1, gen);  // 10% of observed
//
// Every file problem is an IOError naming the file, the row (1-based, counting the header as
// row 1) and the column; argument problems are ValueErrors.
#pragma once
#include <string>
#include <vector>

#include "autodiff/sg.hpp"

namespace sg::nn {

// values[t, k] holds the entry of series k at time t where observed[t, k], and 0 elsewhere.
struct MaskedTable {
  Tensor values;    // [T, K] float64
  Tensor observed;  // [T, K] bool
  std::vector<std::string> columns;
  std::string source;  // where it came from, for messages
  int64_t rows() const { return values.dim(0); }
  int64_t cols() const { return values.dim(1); }
  // Rows [begin, end) as a table of its own (same columns and source).
  MaskedTable slice_rows(int64_t begin, int64_t end) const;
};
// Checks the invariants above (shapes [T, K] alike, float64/bool, zeros off the mask, finite
// on it, one name per column); IOError naming `source`, row and column otherwise.
void check_table(const MaskedTable& t);

struct CsvTableOptions {
  // Columns to keep, in this order (empty: every column). Names as in the header row.
  std::vector<std::string> columns;
  // Tokens (after surrounding quotes are removed) that mark a missing entry.
  std::vector<std::string> missing = {"NA", ""};
};
// A comma-separated file with a header row; fields may be double-quoted. Every kept field must
// be a finite number or a missing token ("nan" or "inf" in a field is an error, not a gap).
MaskedTable load_csv_table(const std::string& path, const CsvTableOptions& o = {});

// NumPy arrays: values [T] or [T, K] with an optional mask of the same shape (nonzero =
// observed); without a mask, NaN entries are the gaps. Columns are named "0", "1", ... Any
// other non-finite value, NaN on the mask, or a mask of another shape is an IOError naming the
// file(s), row and column.
MaskedTable load_npy_table(const std::string& values_path, const std::string& mask_path = "");
// The same from two members of one .npz archive (mask_key "": no mask, NaN marks the gaps).
MaskedTable load_npz_table(const std::string& path, const std::string& values_key = "values",
                           const std::string& mask_key = "mask");

// R's airquality (New York, May-September 1973): 153 days of Ozone, Solar.R, Wind, Temp with
// 37 and 7 natural gaps in the first two (data/airquality.csv, see data/README.md).
MaskedTable load_airquality(const std::string& path = "");
// Weekly CO2 at Mauna Loa, 1958-03-29 .. 2001-12-29: 2284 weeks, 59 gaps (data/co2.csv).
MaskedTable load_co2(const std::string& path = "");

// Per-feature mean and standard deviation over observed entries (population std, as CSDI).
struct Standardizer {
  std::vector<double> mean, std;
  // IOError naming the table's source and column when a column has no observed entry or a
  // zero spread.
  static Standardizer fit(const MaskedTable& t);
  MaskedTable apply(const MaskedTable& t) const;  // (x - mean) / std on the mask, 0 elsewhere
  // x * std + mean over the last axis of any [..., K] tensor (samples back to data units).
  Tensor invert(const Tensor& z) const;
};

struct TimeSplit {
  MaskedTable train, validation, test;
};
// Consecutive blocks: the first round(T * train) rows, the next round(T * validation), the rest.
// ValueError unless each block is non-empty and the fractions are in (0, 1) with sum < 1.
TimeSplit split_by_time(const MaskedTable& t, double train, double validation);

// Windows of `length` rows starting every `stride` rows (the last window ends at or before the
// table's end): values and observed [W, length, K]. ValueError when no window fits; IOError
// naming the window's first row when a window has no observed entry at all.
struct Windows {
  Tensor values, observed;
};
Windows make_windows(const MaskedTable& t, int64_t length, int64_t stride);

// A held-out target mask: for each leading-axis sample, round(ratio * n_observed) of its
// observed entries chosen uniformly without replacement (at least one when the sample has two
// or more observed entries and ratio > 0, never all of them when ratio < 1). Bool, same shape
// as `observed`; the conditioning mask is observed & !target. Deterministic given gen.
Tensor holdout_mask(const Tensor& observed, double ratio, Generator& gen);

}  // namespace sg::nn
