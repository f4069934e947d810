// Masked tables: CSV loading with missing tokens, the shipped series, standardisation over
// observed entries, time splits, windows and held-out target masks (see tables.hpp).
#include "nn/tables.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <sstream>

#include "nn/datasets.hpp"
#include "nn/npy.hpp"

namespace sg::nn {
namespace {

// One CSV record split into fields; double quotes group commas and "" is a literal quote.
// Returns false (with `why`) on an unterminated quote or text after a closing quote.
bool split_record(std::string_view line, std::vector<std::string>& fields, std::string& why) {
  fields.clear();
  std::string cur;
  size_t i = 0;
  while (true) {
    cur.clear();
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cur += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        cur += line[i++];
      }
      if (!closed) {
        why = "unterminated quote";
        return false;
      }
      while (i < line.size() && line[i] == ' ') ++i;
      if (i < line.size() && line[i] != ',') {
        why = "text after a closing quote";
        return false;
      }
    } else {
      while (i < line.size() && line[i] != ',') cur += line[i++];
      while (!cur.empty() && (cur.back() == ' ' || cur.back() == '\t')) cur.pop_back();
    }
    fields.push_back(cur);
    if (i >= line.size()) return true;
    ++i;  // the comma
  }
}

MaskedTable make_table(const std::vector<double>& values, const std::vector<double>& observed,
                       int64_t rows, std::vector<std::string> columns, std::string source) {
  const auto k = static_cast<int64_t>(columns.size());
  MaskedTable t;
  t.values = from_vector(values, {rows, k}, DType::f64);
  t.observed = from_vector(observed, {rows, k}, DType::b8);
  t.columns = std::move(columns);
  t.source = std::move(source);
  return t;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// values (and mask) as a table; `source` names the file(s) in messages.
MaskedTable table_from_arrays(const NpyArray& v, const NpyArray* mask, const std::string& source) {
  const char* who = "load_npy_table";
  if (v.shape.empty() || v.shape.size() > 2)
    fail<IOError>(who, ": ", source, ": values of rank ", v.shape.size(),
                  " (expected [T] or [T, K])");
  if (mask && mask->shape != v.shape)
    fail<IOError>(who, ": ", source, ": the mask's shape differs from the values' (",
                  shape_str(mask->shape), " vs ", shape_str(v.shape), ")");
  const int64_t rows = v.shape[0], k = v.shape.size() == 2 ? v.shape[1] : 1;
  if (rows == 0 || k == 0) fail<IOError>(who, ": ", source, ": no entries");
  std::vector<double> values(v.values.size()), observed(v.values.size());
  for (size_t i = 0; i < v.values.size(); ++i) {
    const double x = v.values[i];
    const bool on = mask ? mask->values[i] != 0 : !std::isnan(x);
    if (on && !std::isfinite(x))
      fail<IOError>(who, ": ", source, ": row ", static_cast<int64_t>(i) / k, ", column ",
                    static_cast<int64_t>(i) % k, ": non-finite value ", x,
                    mask ? " where the mask says observed" : "");
    values[i] = on ? x : 0.0;
    observed[i] = on ? 1.0 : 0.0;
  }
  std::vector<std::string> names;
  for (int64_t c = 0; c < k; ++c) names.push_back(std::to_string(c));
  return make_table(values, observed, rows, std::move(names), source);
}

}  // namespace

MaskedTable load_npy_table(const std::string& values_path, const std::string& mask_path) {
  const NpyArray v = load_npy(values_path);
  if (mask_path.empty()) return table_from_arrays(v, nullptr, values_path);
  const NpyArray m = load_npy(mask_path);
  return table_from_arrays(v, &m, values_path + " with mask " + mask_path);
}

MaskedTable load_npz_table(const std::string& path, const std::string& values_key,
                           const std::string& mask_key) {
  const std::map<std::string, NpyArray> arrays = load_npz(path);
  auto member = [&](const std::string& key) -> const NpyArray& {
    const auto it = arrays.find(key);
    if (it == arrays.end()) {
      std::string names;
      for (const auto& [n, a] : arrays) names += (names.empty() ? "" : ", ") + n;
      fail<IOError>("load_npz_table: ", path, ": no member '", key, "' (members: ", names, ")");
    }
    return it->second;
  };
  const NpyArray& v = member(values_key);
  if (mask_key.empty()) return table_from_arrays(v, nullptr, path + ":" + values_key);
  return table_from_arrays(v, &member(mask_key), path + ":" + values_key + " with " + mask_key);
}

MaskedTable MaskedTable::slice_rows(int64_t begin, int64_t end) const {
  if (begin < 0 || end > rows() || begin >= end)
    fail<ValueError>("MaskedTable::slice_rows: rows [", begin, ", ", end, ") of a table with ",
                     rows(), " rows (", source, ")");
  return {contiguous(slice(values, 0, begin, end)), contiguous(slice(observed, 0, begin, end)),
          columns, source};
}

void check_table(const MaskedTable& t) {
  const char* who = "check_table";
  if (!t.values.defined() || !t.observed.defined())
    fail<ValueError>(who, ": ", t.source, ": values and observed mask must both be set");
  if (t.values.rank() != 2 || t.values.shape() != t.observed.shape())
    fail<ShapeError>(who, ": ", t.source, ": values ", describe(t.values), " and mask ",
                     describe(t.observed), " must both be [T, K]");
  if (t.values.dtype() != DType::f64 || t.observed.dtype() != DType::b8)
    fail<DTypeError>(who, ": ", t.source, ": values must be float64 and the mask bool, got ",
                     describe(t.values), " and ", describe(t.observed));
  if (static_cast<int64_t>(t.columns.size()) != t.cols())
    fail<ValueError>(who, ": ", t.source, ": ", t.columns.size(), " column names for ", t.cols(),
                     " columns");
  const std::vector<double> v = t.values.to_vector(), m = t.observed.to_vector();
  for (int64_t r = 0; r < t.rows(); ++r)
    for (int64_t c = 0; c < t.cols(); ++c) {
      const double x = v[static_cast<size_t>(r * t.cols() + c)];
      const bool on = m[static_cast<size_t>(r * t.cols() + c)] != 0;
      if (on ? !std::isfinite(x) : x != 0)
        fail<IOError>(who, ": ", t.source, ": row ", r, ", column '", t.columns[c], "': ",
                      on ? "non-finite observed value " : "value off the mask must be 0, got ", x);
    }
}

MaskedTable load_csv_table(const std::string& path, const CsvTableOptions& o) {
  const char* who = "load_csv_table";
  const std::string text = read_file_bytes(path, who);
  std::vector<std::string> fields, header;
  std::string why;
  std::vector<double> values, observed;
  std::vector<size_t> keep;  // header index of each kept column
  int64_t rows = 0, line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line = std::string_view(text).substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() && start >= text.size()) break;  // final newline
    auto where = [&] { return cat(who, ": ", path, " row ", line_no); };
    if (line.empty()) fail<IOError>(where(), ": empty line");
    if (!split_record(line, fields, why)) fail<IOError>(where(), ": ", why);
    if (header.empty()) {
      header = fields;
      if (o.columns.empty()) {
        keep.resize(header.size());
        std::iota(keep.begin(), keep.end(), size_t{0});
      }
      for (const std::string& want : o.columns) {
        const auto it = std::find(header.begin(), header.end(), want);
        if (it == header.end())
          fail<IOError>(who, ": ", path, ": no column '", want, "' in the header row");
        keep.push_back(static_cast<size_t>(it - header.begin()));
      }
      continue;
    }
    if (fields.size() != header.size())
      fail<IOError>(where(), ": ", fields.size(), " fields, the header has ", header.size());
    for (size_t j : keep) {
      const std::string& f = fields[j];
      const bool missing = std::find(o.missing.begin(), o.missing.end(), f) != o.missing.end();
      double x = 0;
      if (!missing) {
        const auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), x);
        if (ec != std::errc() || p != f.data() + f.size() || !std::isfinite(x))
          fail<IOError>(where(), ", column '", header[j], "': '", f,
                        "' is neither a finite number nor a missing token");
      }
      values.push_back(missing ? 0.0 : x);
      observed.push_back(missing ? 0.0 : 1.0);
    }
    ++rows;
  }
  if (header.empty()) fail<IOError>(who, ": ", path, ": empty file (no header row)");
  if (rows == 0) fail<IOError>(who, ": ", path, ": a header row and no data rows");
  std::vector<std::string> names;
  for (size_t j : keep) names.push_back(header[j]);
  return make_table(values, observed, rows, std::move(names), path);
}

MaskedTable load_airquality(const std::string& path) {
  return load_csv_table(path.empty() ? data_path("airquality.csv") : path,
                        {.columns = {"Ozone", "Solar.R", "Wind", "Temp"}});
}
MaskedTable load_co2(const std::string& path) {
  return load_csv_table(path.empty() ? data_path("co2.csv") : path, {.columns = {"co2"}});
}

Standardizer Standardizer::fit(const MaskedTable& t) {
  check_table(t);
  const std::vector<double> v = t.values.to_vector(), m = t.observed.to_vector();
  Standardizer s;
  for (int64_t c = 0; c < t.cols(); ++c) {
    double n = 0, sum = 0;
    for (int64_t r = 0; r < t.rows(); ++r) {
      const auto i = static_cast<size_t>(r * t.cols() + c);
      n += m[i];
      sum += m[i] * v[i];
    }
    if (n == 0)
      fail<IOError>("Standardizer::fit: ", t.source, ": column '", t.columns[c],
                    "' has no observed entry in rows 0..", t.rows() - 1);
    const double mean = sum / n;
    double ss = 0;
    for (int64_t r = 0; r < t.rows(); ++r) {
      const auto i = static_cast<size_t>(r * t.cols() + c);
      if (m[i] != 0) ss += (v[i] - mean) * (v[i] - mean);
    }
    const double sd = std::sqrt(ss / n);
    if (!(sd > 0))
      fail<IOError>("Standardizer::fit: ", t.source, ": column '", t.columns[c],
                    "' has no spread over its ", n, " observed entries");
    s.mean.push_back(mean);
    s.std.push_back(sd);
  }
  return s;
}

MaskedTable Standardizer::apply(const MaskedTable& t) const {
  check_table(t);
  if (static_cast<int64_t>(mean.size()) != t.cols())
    fail<ValueError>("Standardizer::apply: fitted on ", mean.size(), " columns, table ", t.source,
                     " has ", t.cols());
  const Device d = t.values.device();
  const Tensor mu = from_vector(mean, {t.cols()}, DType::f64, d);
  const Tensor sd = from_vector(std, {t.cols()}, DType::f64, d);
  MaskedTable out = t;
  out.values = where(t.observed, (t.values - mu) / sd, 0.0);
  return out;
}

Tensor Standardizer::invert(const Tensor& z) const {
  if (z.rank() < 1 || z.dim(-1) != static_cast<int64_t>(mean.size()))
    fail<ShapeError>("Standardizer::invert: ", describe(z), " does not end in ", mean.size(),
                     " features");
  const Tensor mu = from_vector(mean, {z.dim(-1)}, z.dtype(), z.device());
  const Tensor sd = from_vector(std, {z.dim(-1)}, z.dtype(), z.device());
  return z * sd + mu;
}

TimeSplit split_by_time(const MaskedTable& t, double train, double validation) {
  if (!(train > 0 && train < 1 && validation > 0 && validation < 1 && train + validation < 1))
    fail<ValueError>("split_by_time: fractions train ", train, " and validation ", validation,
                     " must lie in (0, 1) with a sum below 1");
  const auto n = static_cast<double>(t.rows());
  const auto a = static_cast<int64_t>(std::llround(n * train));
  const auto b = a + static_cast<int64_t>(std::llround(n * validation));
  if (a < 1 || b <= a || b >= t.rows())
    fail<ValueError>("split_by_time: ", t.rows(), " rows of ", t.source, " split at ", a, " and ",
                     b, " leave an empty block");
  return {t.slice_rows(0, a), t.slice_rows(a, b), t.slice_rows(b, t.rows())};
}

Windows make_windows(const MaskedTable& t, int64_t length, int64_t stride) {
  if (length < 1 || stride < 1)
    fail<ValueError>("make_windows: length ", length, " and stride ", stride, " must be positive");
  if (length > t.rows())
    fail<ValueError>("make_windows: window length ", length, " exceeds the ", t.rows(), " rows of ",
                     t.source);
  std::vector<Tensor> vs, ms;
  for (int64_t s = 0; s + length <= t.rows(); s += stride) {
    const Tensor m = slice(t.observed, 0, s, s + length);
    if (sum(m.to(DType::f64)).item() == 0)
      fail<IOError>("make_windows: ", t.source, ": the window of rows ", s, "..", s + length - 1,
                    " has no observed entry");
    vs.push_back(slice(t.values, 0, s, s + length));
    ms.push_back(m);
  }
  return {stack(vs, 0), stack(ms, 0)};
}

Tensor holdout_mask(const Tensor& observed, double ratio, Generator& gen) {
  if (observed.dtype() != DType::b8 || observed.rank() < 1)
    fail<DTypeError>("holdout_mask: observed must be a bool tensor of rank >= 1, got ",
                     describe(observed));
  if (!(ratio >= 0 && ratio <= 1))
    fail<ValueError>("holdout_mask: ratio ", ratio, " is outside [0, 1]");
  const int64_t b = observed.dim(0), per = b ? observed.numel() / b : 0;
  const std::vector<double> m = observed.to_vector();
  // One uniform key per entry; a sample's targets are its observed entries with the smallest keys.
  const std::vector<double> keys = rand({b, per}, gen, DType::f64).to_vector();
  std::vector<double> target(m.size(), 0.0);
  std::vector<int64_t> idx;
  for (int64_t s = 0; s < b; ++s) {
    idx.clear();
    for (int64_t j = 0; j < per; ++j)
      if (m[static_cast<size_t>(s * per + j)] != 0) idx.push_back(s * per + j);
    const auto n = static_cast<int64_t>(idx.size());
    int64_t k = std::llround(ratio * static_cast<double>(n));
    if (ratio > 0 && n >= 2) k = std::max<int64_t>(k, 1);
    if (ratio < 1) k = std::min<int64_t>(k, n - 1);
    k = std::clamp<int64_t>(k, 0, n);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t x, int64_t y) {
      return keys[static_cast<size_t>(x)] < keys[static_cast<size_t>(y)];
    });
    for (int64_t i = 0; i < k; ++i) target[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 1;
  }
  return from_vector(target, observed.shape(), DType::b8, observed.device());
}

}  // namespace sg::nn
