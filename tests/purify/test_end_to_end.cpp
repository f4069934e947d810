// End to end on the digits: a classifier and a DSM-trained purifier, attacked by PGD without
// the defence, through it by transfer, BPDA+EOT and the full gradient. Asserts that PGD lowers
// the undefended accuracy and that purification keeps most of the clean accuracy; prints the
// rest (the figures of a single seed; the table over seeds is the command's job).
#include <catch2/catch.hpp>
#include <ctime>
#include <iostream>

#include "autodiff/sg.hpp"
#include "purify/attacks.hpp"

using namespace sg;
using namespace sg::purify;

TEST_CASE("end to end: PGD against the undefended and the purified classifier", "[purify][e2e]") {
  const std::clock_t t0 = std::clock();
  const DigitsSplit s = digits_split({.seed = 1});
  Generator gen(0);
  MlpClassifier clf({}, gen);
  train_classifier(clf, s.train_x, s.train_y, {.epochs = 10});
  ScoreNet h({1, 8, 8}, {}, gen);
  const DsmTrainReport dsm = train_score(h, s.train_x, {.steps = 800});
  const Purifier pur(h, {.sigma_rand = 0.25});
  const int64_t n = 120;
  const Tensor x = slice(s.test_x, 0, 0, n), y = slice(s.test_y, 0, 0, n);
  const PgdOptions pgd_opts{.epsilon = 0.1, .step_size = 0.025, .steps = 10};
  const EnsembleOptions ens{.copies = 4};

  const double clean = accuracy(clf, x, y);
  Generator ga(1);
  const Tensor x_adv = pgd({.classifier = &clf}, x, y, ga, pgd_opts);
  const double undefended = accuracy(clf, x_adv, y);
  Generator ge(2);
  const EnsembleAccuracy pur_clean = purified_accuracy(clf, pur, x, y, ge, ens);
  const EnsembleAccuracy pur_transfer = purified_accuracy(clf, pur, x_adv, y, ge, ens);
  Generator gb(3);
  const Tensor x_bpda =
      pgd({.classifier = &clf, .purifier = &pur, .gradient = GradientMode::bpda, .eot = 2}, x, y,
          gb, pgd_opts);
  const EnsembleAccuracy pur_bpda = purified_accuracy(clf, pur, x_bpda, y, ge, ens);
  Generator gf(4);
  const Tensor x_full =
      pgd({.classifier = &clf, .purifier = &pur, .gradient = GradientMode::full, .eot = 2}, x, y,
          gf, pgd_opts);
  const EnsembleAccuracy pur_full = purified_accuracy(clf, pur, x_full, y, ge, ens);
  const double secs = double(std::clock() - t0) / CLOCKS_PER_SEC;

  std::cout << "digits, " << n << " held-out samples, l_inf eps 0.1, PGD 10 x 0.025; "
            << "purifier sigma_rand 0.25, 4 copies (logits / softmax / vote)\n"
            << "  DSM loss " << dsm.loss.front() << " -> " << dsm.loss.back() << "\n"
            << "  undefended: clean " << clean << ", PGD " << undefended << "\n";
  const auto row = [](const char* name, const EnsembleAccuracy& a) {
    std::cout << "  purified " << name << ": " << a.logits << " / " << a.softmax << " / " << a.vote
              << "\n";
  };
  row("clean", pur_clean);
  row("transfer PGD", pur_transfer);
  row("BPDA+EOT(2) PGD", pur_bpda);
  row("full-gradient+EOT(2) PGD", pur_full);
  std::cout << "  " << secs << " s CPU\n";
  CHECK(clean > 0.9);                              // measured 0.983
  CHECK(undefended < clean - 0.3);                 // measured 0.358
  CHECK(pur_clean.softmax > 0.85);                 // measured 0.917
  CHECK(pur_transfer.softmax > undefended + 0.1);  // measured 0.558
}
