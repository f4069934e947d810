// Masked tables: the shipped series against the facts published for them, CSV edge cases with
// errors naming file/row/column, standardisation over observed entries, splits, windows, and
// the held-out target mask (exact counts, determinism, uniform selection within standard errors).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "nn/tables.hpp"
#include "tests/support/expect.hpp"

using namespace sg;
using namespace sg::nn;

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/sg_test_tables_" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}
std::vector<double> column_missing(const MaskedTable& t) {
  std::vector<double> out;
  const Tensor miss = sum(1.0 - t.observed.to(DType::f64), {0});
  return miss.to_vector();
}
double observed_mean(const MaskedTable& t, int64_t c) {
  const Tensor m = select(t.observed.to(DType::f64), 1, c);
  return (sum(select(t.values, 1, c) * m) / sum(m)).item();
}
}  // namespace

TEST_CASE("airquality: 153 days, the published gaps and means", "[tables]") {
  const MaskedTable t = load_airquality();
  REQUIRE(t.values.shape() == Shape{153, 4});
  CHECK(t.columns == std::vector<std::string>{"Ozone", "Solar.R", "Wind", "Temp"});
  CHECK(column_missing(t) == std::vector<double>{37, 7, 0, 0});
  CHECK(observed_mean(t, 0) == Approx(42.12931).epsilon(1e-6));
  CHECK(observed_mean(t, 1) == Approx(185.931507).epsilon(1e-8));
  CHECK(observed_mean(t, 2) == Approx(9.957516).epsilon(1e-6));
  CHECK(observed_mean(t, 3) == Approx(77.882353).epsilon(1e-8));
  check_table(t);
}

TEST_CASE("co2: 2284 weeks with 59 gaps", "[tables]") {
  const MaskedTable t = load_co2();
  REQUIRE(t.values.shape() == Shape{2284, 1});
  CHECK(column_missing(t) == std::vector<double>{59});
  CHECK(observed_mean(t, 0) == Approx(340.142247).epsilon(1e-8));
}

TEST_CASE("csv tables: quoting, missing tokens and errors naming file, row and column",
          "[tables]") {
  const std::string ok = write_temp("ok.csv",
                                    "\"a\",\"b, quoted\",c\r\n1,NA,\"3\"\r\n\"4\",,6\r\n-1e3,2,"
                                    "0\r\n");
  const MaskedTable t = load_csv_table(ok, {.columns = {"c", "b, quoted"}});
  CHECK(t.columns == std::vector<std::string>{"c", "b, quoted"});
  CHECK(t.values.to_vector() == std::vector<double>{3, 0, 6, 0, 0, 2});
  CHECK(t.observed.to_vector() == std::vector<double>{1, 0, 1, 0, 1, 1});

  auto error_of = [](const std::string& name, const std::string& text) {
    return test::message_of<IOError>([&] { (void)load_csv_table(write_temp(name, text)); });
  };
  std::string m = error_of("nan.csv", "x,y\n1,2\n3,nan\n");
  CHECK(m.find("row 3") != std::string::npos);
  CHECK(m.find("column 'y'") != std::string::npos);
  CHECK(m.find("sg_test_tables_nan.csv") != std::string::npos);
  CHECK(error_of("ragged.csv", "x,y\n1,2\n3\n").find("row 3: 1 fields") != std::string::npos);
  CHECK(error_of("text.csv", "x\n1x\n").find("'1x'") != std::string::npos);
  CHECK(error_of("quote.csv", "x\n\"1\n").find("unterminated quote") != std::string::npos);
  CHECK(error_of("empty.csv", "").find("empty file") != std::string::npos);
  CHECK(error_of("header.csv", "x,y\n").find("no data rows") != std::string::npos);
  CHECK(error_of("blank.csv", "x\n1\n\n2\n").find("row 3: empty line") != std::string::npos);
  CHECK_THROWS_AS(load_csv_table(ok, {.columns = {"nope"}}), IOError);
  CHECK_THROWS_AS(load_csv_table("/nonexistent/table.csv"), IOError);
}

TEST_CASE("standardizer: observed entries only, exact inverse, typed errors", "[tables]") {
  const MaskedTable t = load_airquality();
  const Standardizer s = Standardizer::fit(t);
  CHECK(s.mean[0] == Approx(observed_mean(t, 0)).epsilon(1e-12));
  const MaskedTable z = s.apply(t);
  for (int64_t c = 0; c < 4; ++c) CHECK(std::fabs(observed_mean(z, c)) < 1e-12);
  // Zero off the mask, and back to data units on it.
  const Tensor off = where(t.observed, zeros_like(z.values), abs(z.values));
  CHECK(sum(off).item() == 0);
  const Tensor back = where(t.observed, s.invert(z.values), 0.0);
  CHECK(max(abs(back - t.values)).item() < 1e-12);

  MaskedTable gap = t.slice_rows(0, 10);
  gap.observed = zeros_like(gap.observed.to(DType::f64)).to(DType::b8);
  gap.values = zeros_like(gap.values);
  const std::string m = test::message_of<IOError>([&] { (void)Standardizer::fit(gap); });
  CHECK(m.find("column 'Ozone' has no observed entry") != std::string::npos);
}

TEST_CASE("splits by time and windows", "[tables]") {
  const MaskedTable t = load_airquality();
  const TimeSplit s = split_by_time(t, 0.7, 0.1);
  CHECK(s.train.rows() == 107);
  CHECK(s.validation.rows() == 15);
  CHECK(s.test.rows() == 31);
  CHECK(s.test.values.to_vector() == t.slice_rows(122, 153).values.to_vector());
  CHECK_THROWS_AS(split_by_time(t, 0.9, 0.1), ValueError);
  CHECK_THROWS_AS(split_by_time(t, 0, 0.1), ValueError);

  const Windows w = make_windows(t, 31, 30);
  REQUIRE(w.values.shape() == Shape{5, 31, 4});
  CHECK(select(w.values, 0, 1).to_vector() == t.slice_rows(30, 61).values.to_vector());
  CHECK_THROWS_AS(make_windows(t, 154, 1), ValueError);
  MaskedTable holes = t;
  holes.observed = where(arange(153, DType::f64).reshape({153, 1}) < 40.0,
                         zeros({153, 4}, DType::f64), holes.observed.to(DType::f64))
                       .to(DType::b8);
  holes.values = where(holes.observed, holes.values, 0.0);
  const std::string m = test::message_of<IOError>([&] { (void)make_windows(holes, 20, 20); });
  CHECK(m.find("rows 0..19 has no observed entry") != std::string::npos);
}

TEST_CASE("holdout mask: exact counts, subset, deterministic, uniform", "[tables]") {
  const MaskedTable t = load_airquality();
  const Windows w = make_windows(t, 31, 30);
  for (double ratio : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    Generator g1(3), g2(3);
    const Tensor a = holdout_mask(w.observed, ratio, g1), b = holdout_mask(w.observed, ratio, g2);
    CHECK(a.to_vector() == b.to_vector());
    const std::vector<double> obs = sum(w.observed.to(DType::f64), {1, 2}).to_vector();
    const std::vector<double> held = sum(a.to(DType::f64), {1, 2}).to_vector();
    for (size_t i = 0; i < obs.size(); ++i) {
      double want = std::round(ratio * obs[i]);
      if (ratio > 0) want = std::max(want, 1.0);
      if (ratio < 1) want = std::min(want, obs[i] - 1);
      CHECK(held[i] == want);
    }
    // A subset of the observed entries.
    CHECK(sum(a.to(DType::f64) * (1.0 - w.observed.to(DType::f64))).item() == 0);
  }
  Generator g3(4);
  Generator g4(5);
  CHECK(holdout_mask(w.observed, 0.5, g3).to_vector() !=
        holdout_mask(w.observed, 0.5, g4).to_vector());

  // Each of 10 observed entries is chosen with probability 3/10: frequencies over 4000 draws
  // within 4.5 standard errors (sqrt(0.21 / 4000) = 0.0072).
  const Tensor obs = from_vector({1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1}, {1, 12}, DType::b8);
  Generator g(9);
  std::vector<double> freq(12, 0.0);
  const int draws = 4000;
  for (int d = 0; d < draws; ++d) {
    const std::vector<double> h = holdout_mask(obs, 0.3, g).to_vector();
    for (size_t j = 0; j < 12; ++j) freq[j] += h[j] / draws;
  }
  const double se = std::sqrt(0.3 * 0.7 / draws);
  for (size_t j = 0; j < 12; ++j) {
    INFO("entry " << j << " frequency " << freq[j]);
    if (j == 2 || j == 7)
      CHECK(freq[j] == 0);
    else
      CHECK(std::fabs(freq[j] - 0.3) < 4.5 * se);
  }
  CHECK_THROWS_AS(holdout_mask(obs, 1.5, g), ValueError);
  CHECK_THROWS_AS(holdout_mask(obs.to(DType::f64), 0.5, g), DTypeError);
}

TEST_CASE("tables on the stand-in device: standardisation and masks follow the data",
          "[tables][standin]") {
  const MaskedTable t = load_airquality();
  MaskedTable d = t;
  d.values = t.values.to(Device::standin());
  d.observed = t.observed.to(Device::standin());
  const Standardizer s = Standardizer::fit(t);
  const MaskedTable zc = s.apply(t), zd = s.apply(d);
  CHECK(zd.values.device() == Device::standin());
  CHECK(zd.values.to_vector() == zc.values.to_vector());
  Generator a(1), b(1);
  const Tensor mc = holdout_mask(t.observed, 0.5, a), md = holdout_mask(d.observed, 0.5, b);
  CHECK(md.device() == Device::standin());
  CHECK(md.to_vector() == mc.to_vector());
}
