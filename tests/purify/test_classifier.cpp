// Digit classifiers (purify/classifier.hpp): the held-out split, cross-entropy and argmax on
// known answers, and the MLP and CNN trained in a few seconds to high held-out accuracy.
#include <catch2/catch.hpp>
#include <cmath>
#include <ctime>
#include <iostream>

#include "autodiff/sg.hpp"
#include "purify/classifier.hpp"

using namespace sg;
using namespace sg::purify;

TEST_CASE("digits_split: disjoint, complete, scaled to [0, 1]", "[purify][classifier]") {
  const DigitsSplit s = digits_split({.test_fraction = 0.25, .seed = 3});
  CHECK(s.train_x.dim(0) + s.test_x.dim(0) == 1797);
  CHECK(s.test_x.dim(0) == 449);
  CHECK(s.train_x.shape() == Shape{1348, 1, 8, 8});
  CHECK(s.train_y.dtype() == DType::i64);
  CHECK(min(s.train_x).item() == 0.0);
  CHECK(max(s.train_x).item() == 1.0);
  // the pixel sums of both parts add up to the file's total, 561718 / 16
  CHECK(sum(s.train_x.to(DType::f64)).item() + sum(s.test_x.to(DType::f64)).item() ==
        Approx(561718.0 / 16.0).epsilon(1e-12));
  CHECK_THROWS_AS(digits_split({.test_fraction = 1.0}), ValueError);
}

TEST_CASE("cross_entropy and argmax on known answers", "[purify][classifier]") {
  const Tensor logits = from_vector({0, std::log(3.0), 2, 2, 5, -1}, {2, 3}, DType::f64);
  const Tensor y = from_indices({1, 0}, {2});
  const std::vector<double> ce = cross_entropy(logits, y).to_vector();
  CHECK(ce[0] == Approx(std::log(4.0 + std::exp(2.0)) - std::log(3.0)));
  CHECK(ce[1] == Approx(std::log(std::exp(2.0) + std::exp(5.0) + std::exp(-1.0)) - 2.0));
  CHECK(argmax(logits).values<int64_t>() == std::vector<int64_t>{2, 1});
  // ties go to the first index
  CHECK(argmax(from_vector({1, 1, 0}, {1, 3})).values<int64_t>() == std::vector<int64_t>{0});
  CHECK(accuracy_of(logits, from_indices({2, 0}, {2})) == 0.5);
  CHECK_THROWS_AS(cross_entropy(logits, from_indices({1}, {1})), ShapeError);
}

namespace {
// Trains on the split's training part and reports the held-out accuracy (and the CPU time).
double train_and_score(const char* name, Classifier& clf, const DigitsSplit& s) {
  const std::clock_t t0 = std::clock();
  const auto rep = train_classifier(clf, s.train_x, s.train_y, {.epochs = 10});
  const double secs = double(std::clock() - t0) / CLOCKS_PER_SEC;
  const double acc = accuracy(clf, s.test_x, s.test_y);
  std::cout << name << ": held-out accuracy " << acc << " after " << rep.steps << " steps, " << secs
            << " s CPU, loss " << rep.epoch_loss.front() << " -> " << rep.epoch_loss.back() << "\n";
  CHECK(rep.epoch_loss.back() < 0.1 * rep.epoch_loss.front());
  return acc;
}
}  // namespace

TEST_CASE("classifiers train to high held-out accuracy within seconds", "[purify][classifier]") {
  const DigitsSplit s = digits_split({.seed = 1});
  Generator gen(0);
  MlpClassifier mlp({}, gen);
  CHECK(train_and_score("MLP", mlp, s) > 0.93);  // measured 0.964
  CnnClassifier cnn({}, gen);
  CHECK(train_and_score("CNN", cnn, s) > 0.93);  // measured 0.969
}
