// Runge-Kutta solves from Butcher tableaux, PI step control, and the three ways of
// differentiating a solve (see ode.hpp).
#include "sde/ode.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "autodiff/ops/op_def.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/tape/tape.hpp"
#include "autodiff/transforms/transforms.hpp"

namespace sg::ode {

// ---- tableaux -------------------------------------------------------------------------------
const Tableau& euler() {
  static const Tableau t{"euler", 1, 0, {0}, {0}, {1}, {}, false};
  return t;
}
const Tableau& midpoint() {
  static const Tableau t{"midpoint", 2, 0, {0, 0.5}, {0, 0, 0.5, 0}, {0, 1}, {}, false};
  return t;
}
const Tableau& heun() {
  static const Tableau t{"heun", 2, 1, {0, 1}, {0, 0, 1, 0}, {0.5, 0.5}, {1, 0}, false};
  return t;
}
const Tableau& rk4() {
  static const Tableau t{"rk4",
                         4,
                         0,
                         {0, 0.5, 0.5, 1},
                         {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0},
                         {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6},
                         {},
                         false};
  return t;
}
const Tableau& bosh3() {
  static const Tableau t{"bosh3",
                         3,
                         2,
                         {0, 0.5, 0.75, 1},
                         {0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0.75, 0, 0, 2.0 / 9, 1.0 / 3, 4.0 / 9, 0},
                         {2.0 / 9, 1.0 / 3, 4.0 / 9, 0},
                         {7.0 / 24, 0.25, 1.0 / 3, 0.125},
                         true,
                         Interpolant::hermite};
  return t;
}
const Tableau& dopri5() {
  static const Tableau t{
      "dopri5",
      5,
      4,
      {0, 0.2, 0.3, 0.8, 8.0 / 9, 1, 1},
      {0,
       0,
       0,
       0,
       0,
       0,
       0,
       0.2,
       0,
       0,
       0,
       0,
       0,
       0,
       3.0 / 40,
       9.0 / 40,
       0,
       0,
       0,
       0,
       0,
       44.0 / 45,
       -56.0 / 15,
       32.0 / 9,
       0,
       0,
       0,
       0,
       19372.0 / 6561,
       -25360.0 / 2187,
       64448.0 / 6561,
       -212.0 / 729,
       0,
       0,
       0,
       9017.0 / 3168,
       -355.0 / 33,
       46732.0 / 5247,
       49.0 / 176,
       -5103.0 / 18656,
       0,
       0,
       35.0 / 384,
       0,
       500.0 / 1113,
       125.0 / 192,
       -2187.0 / 6784,
       11.0 / 84,
       0},
      {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0},
      {5179.0 / 57600, 0, 7571.0 / 16695, 393.0 / 640, -92097.0 / 339200, 187.0 / 2100, 1.0 / 40},
      true,
      Interpolant::dopri5};
  return t;
}
const Tableau& tsit5() {
  // Tsitouras (2011), "Runge-Kutta pairs of order 5(4) satisfying only the first column
  // simplifying assumption"; b_hat = b - btilde.
  static const Tableau t = [] {
    const double c[7] = {0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1};
    const double a21 = 0.161;
    const double a31 = -0.008480655492356989, a32 = 0.335480655492357;
    const double a41 = 2.897153057105493, a42 = -6.359448489975075, a43 = 4.3622954328695815;
    const double a51 = 5.325864828439257, a52 = -11.748883564062828, a53 = 7.4955393428898365,
                 a54 = -0.09249506636175525;
    const double a61 = 5.86145544294642, a62 = -12.92096931784711, a63 = 8.159367898576159,
                 a64 = -0.071584973281401, a65 = -0.028269050394068383;
    const double b[7] = {
        0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
        2.324710524099774,   0};
    const double bt[7] = {0.001780011052226, 0.000816434459657,  -0.007880878010262,
                          0.144711007173263, -0.582357165452555, 0.458082105929187,
                          -1.0 / 66};
    Tableau r{"tsit5",
              5,
              4,
              std::vector<double>(c, c + 7),
              std::vector<double>(49, 0.0),
              std::vector<double>(b, b + 7),
              std::vector<double>(7),
              true,
              Interpolant::tsit5};
    const double rows[6][6] = {{a21},
                               {a31, a32},
                               {a41, a42, a43},
                               {a51, a52, a53, a54},
                               {a61, a62, a63, a64, a65},
                               {b[0], b[1], b[2], b[3], b[4], b[5]}};
    for (int i = 1; i < 7; ++i)
      for (int j = 0; j < i; ++j) r.a[i * 7 + j] = rows[i - 1][j];
    for (int i = 0; i < 7; ++i) r.b_hat[i] = b[i] - bt[i];
    return r;
  }();
  return t;
}
// Hairer & Wanner's DOP853 (Dormand & Prince 1980 8(6) as revised by Hairer): 12 stages plus
// the FSAL stage, a 5th-order and a 3rd-order error estimate combined. Coefficients as decimal
// doubles (17 significant digits) of Hairer's published values.
const Tableau& dop853() {
  static const Tableau t = [] {
    const std::vector<std::vector<double>> rows = {
        {},
        {0.05260015195876773},
        {0.0197250569845379, 0.0591751709536137},
        {0.02958758547680685, 0.0, 0.08876275643042054},
        {0.2413651341592667, 0.0, -0.8845494793282861, 0.924834003261792},
        {0.037037037037037035, 0.0, 0.0, 0.17082860872947386, 0.12546768756682242},
        {0.037109375, 0.0, 0.0, 0.17025221101954405, 0.06021653898045596, -0.017578125},
        {0.03709200011850479, 0.0, 0.0, 0.17038392571223998, 0.10726203044637328,
         -0.015319437748624402, 0.008273789163814023},
        {0.6241109587160757, 0.0, 0.0, -3.3608926294469414, -0.868219346841726, 27.59209969944671,
         20.154067550477894, -43.48988418106996},
        {0.47766253643826434, 0.0, 0.0, -2.4881146199716677, -0.590290826836843, 21.230051448181193,
         15.279233632882423, -33.28821096898486, -0.020331201708508627},
        {-0.9371424300859873, 0.0, 0.0, 5.186372428844064, 1.0914373489967295, -8.149787010746927,
         -18.52006565999696, 22.739487099350505, 2.4936055526796523, -3.0467644718982196},
        {2.273310147516538, 0.0, 0.0, -10.53449546673725, -2.0008720582248625, -17.9589318631188,
         27.94888452941996, -2.8589982771350235, -8.87285693353063, 12.360567175794303,
         0.6433927460157636}};
    const std::vector<double> b = {0.054293734116568765,
                                   0.0,
                                   0.0,
                                   0.0,
                                   0.0,
                                   4.450312892752409,
                                   1.8915178993145003,
                                   -5.801203960010585,
                                   0.3111643669578199,
                                   -0.1521609496625161,
                                   0.20136540080403034,
                                   0.04471061572777259,
                                   0.0};
    const std::vector<double> e5 = {0.01312004499419488,
                                    0.0,
                                    0.0,
                                    0.0,
                                    0.0,
                                    -1.2251564463762044,
                                    -0.4957589496572502,
                                    1.6643771824549864,
                                    -0.35032884874997366,
                                    0.3341791187130175,
                                    0.08192320648511571,
                                    -0.022355307863886294,
                                    0.0};
    const std::vector<double> e3 = {-0.18980075407240762,
                                    0.0,
                                    0.0,
                                    0.0,
                                    0.0,
                                    4.450312892752409,
                                    1.8915178993145003,
                                    -5.801203960010585,
                                    -0.4226823213237919,
                                    -0.1521609496625161,
                                    0.20136540080403034,
                                    0.02265179219836082,
                                    0.0};
    const std::size_t s = 13;
    std::vector<double> a(s * s, 0.0), b_hat(s);
    for (std::size_t i = 0; i < rows.size(); ++i)
      for (std::size_t j = 0; j < rows[i].size(); ++j) a[i * s + j] = rows[i][j];
    for (std::size_t j = 0; j < s - 1; ++j) a[(s - 1) * s + j] = b[j];  // FSAL row
    for (std::size_t j = 0; j < s; ++j) b_hat[j] = b[j] - e5[j];
    // The dense output's three extra stages (c = 0.1, 0.2, 7/9), rows over stages 0..12 (12: the
    // FSAL stage f(t + h, y1)) and the extra stages before them; (stage, a) pairs.
    const std::vector<std::vector<std::pair<int, double>>> extra = {{{0, 0.056167502283047952},
                                                                     {6, 0.25350021021662481},
                                                                     {7, -0.24623903747080249},
                                                                     {8, -0.12419142326381636},
                                                                     {9, 0.15329179827876570},
                                                                     {10, 0.0082010522956346899},
                                                                     {11, 0.0075678976605456998},
                                                                     {12, -0.008298}},
                                                                    {{0, 0.031834648163502141},
                                                                     {5, 0.028300909672366776},
                                                                     {6, 0.053541988307438568},
                                                                     {7, -0.054923748571390988},
                                                                     {10, -0.00010834732869724932},
                                                                     {11, 0.00038257109083565841},
                                                                     {12, -0.00034046500868740456},
                                                                     {13, 0.14131244367463250}},
                                                                    {{0, -0.42889630158379192},
                                                                     {5, -4.6976214153611638},
                                                                     {6, 7.6834211960625990},
                                                                     {7, 4.0689898183971101},
                                                                     {8, 0.35672718745528111},
                                                                     {12, -0.0013990241651590146},
                                                                     {13, 2.9475147891527723},
                                                                     {14, -9.1509584721798700}}};
    std::vector<std::vector<double>> dense_a;
    for (std::size_t i = 0; i < extra.size(); ++i) {
      dense_a.emplace_back(s + i, 0.0);
      for (const auto& [j, v] : extra[i]) dense_a.back()[static_cast<std::size_t>(j)] = v;
    }
    return Tableau{"dop853",
                   8,
                   7,
                   {0.0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274,
                    0.2816496580927726, 0.3333333333333333, 0.25, 0.3076923076923077,
                    0.6512820512820513, 0.6, 0.8571428571428571, 1.0, 1.0},
                   a,
                   b,
                   b_hat,
                   true,
                   Interpolant::dop853,
                   e3,
                   {0.1, 0.2, 7.0 / 9},
                   dense_a};
  }();
  return t;
}

const Tableau& tableau(const std::string& name) {
  for (const Tableau* t :
       {&euler(), &midpoint(), &heun(), &rk4(), &bosh3(), &dopri5(), &tsit5(), &dop853()})
    if (t->name == name) return *t;
  fail<ValueError>("unknown ODE method '", name,
                   "' (euler, midpoint, heun, rk4, bosh3, dopri5, tsit5, dop853)");
}

const char* status_name(Status s) {
  switch (s) {
    case Status::success:
      return "success";
    case Status::step_underflow:
      return "step size underflow";
    case Status::too_many_steps:
      return "too many steps";
    case Status::non_finite:
      return "non-finite state";
    case Status::event:
      return "terminal event";
  }
  return "?";
}

namespace {
// Hairer's form of a continuous extension (contd5 of DOPRI5, contd8 of DOP853), u = 1 - th:
//   y(th) = y0 + th r1 + th u r2 + th^2 u r3 + th^2 u^2 (r4 + th r5 + th u r6 + th^2 u r7 ...)
// with r1 = h sum b k, r2 = h k_1 - r1, r3 = r1 - h k_fsal - r2, r_{4+j} = h sum d_j k; written
// as weights w_i(th) on the stages. `d` holds the rows d_j (each over w.size() stages).
void hairer_weights(double th, const std::vector<double>& b, std::size_t fsal_stage,
                    const std::vector<const double*>& d, std::vector<double>& w) {
  const double u = 1 - th;
  for (std::size_t i = 0; i < b.size(); ++i)
    w[i] = th * b[i] - th * u * b[i] + th * th * u * 2 * b[i];
  w[0] += th * u - th * th * u;
  w[fsal_stage] -= th * th * u;
  // multipliers of r4, r5, r6, r7: th^2 u^2 times 1, th, th u, th^2 u
  const double m[4] = {th * th * u * u, th * th * th * u * u, th * th * th * u * u * u,
                       th * th * th * th * u * u * u};
  for (std::size_t j = 0; j < d.size(); ++j)
    for (std::size_t i = 0; i < w.size(); ++i) w[i] += m[j] * d[j][i];
}
}  // namespace

std::vector<double> Tableau::dense_weights(double th) const {
  const std::size_t s = b.size();
  std::vector<double> w(static_cast<std::size_t>(dense_stages()), 0.0);
  switch (interpolant) {
    case Interpolant::none:
      return {};
    case Interpolant::hermite:
      // y(th) = y0 + th (y1 - y0) + th (th - 1) [(1 - 2 th)(y1 - y0) + (th - 1) h f0 + th h f1]
      for (std::size_t i = 0; i < s; ++i) w[i] = th * b[i] + th * (th - 1) * (1 - 2 * th) * b[i];
      w[0] += th * (th - 1) * (th - 1);
      w[s - 1] += th * (th - 1) * th;
      return w;
    case Interpolant::dopri5: {
      // Hairer's contd5 (Shampine 1986): r4 = h sum d k
      static const double d[7] = {-12715105075.0 / 11282082432.0,  0,
                                  87487479700.0 / 32700410799.0,   -10690763975.0 / 1880347072.0,
                                  701980252875.0 / 199316789632.0, -1453857185.0 / 822651844.0,
                                  69997945.0 / 29380423.0};
      hairer_weights(th, b, 6, {d}, w);
      return w;
    }
    case Interpolant::tsit5: {
      // Tsitouras (2011), section 3: b_i(th), factored as published; b_i(1) = b_i
      const double t2 = th * th;
      w[0] = -1.0530884977290216 * th * (th - 1.3299890189751412) *
             (t2 - 1.4364028541716351 * th + 0.7139816917074209);
      w[1] = 0.1017 * t2 * (t2 - 2.1966568338249754 * th + 1.2949852507374631);
      w[2] = 2.490627285651252793 * t2 * (t2 - 2.38535645472061657 * th + 1.57803468208092486);
      w[3] = -16.54810288924490272 * (th - 1.21712927295533244) * (th - 0.61620406037800089) * t2;
      w[4] = 47.37952196281928122 * (th - 1.203071208372362603) * (th - 0.658047292653547382) * t2;
      w[5] = -34.87065786149660974 * (th - 1.2) * (th - 0.666666666666666667) * t2;
      w[6] = 2.5 * (th - 1) * (th - 0.6) * t2;
      return w;
    }
    case Interpolant::dop853: {
      // Hairer's contd8: r4..r7 = h sum d_j k over the 13 stages and the 3 dense stages
      static const auto rows = [] {
        const std::vector<std::vector<std::pair<int, double>>> d = {{{0, -8.4289382761090129},
                                                                     {5, 0.56671495351937777},
                                                                     {6, -3.0689499459498917},
                                                                     {7, 2.3846676565120698},
                                                                     {8, 2.1170345824450283},
                                                                     {9, -0.87139158377797299},
                                                                     {10, 2.2404374302607883},
                                                                     {11, 0.63157877876946882},
                                                                     {12, -0.088990336451333311},
                                                                     {13, 18.148505520854727},
                                                                     {14, -9.1946323924783554},
                                                                     {15, -4.4360363875948940}},
                                                                    {{0, 10.427508642579135},
                                                                     {5, 242.28349177525818},
                                                                     {6, 165.20045171727028},
                                                                     {7, -374.54675472269020},
                                                                     {8, -22.113666853125306},
                                                                     {9, 7.7334326684722638},
                                                                     {10, -30.674084731089398},
                                                                     {11, -9.3321305264302279},
                                                                     {12, 15.697238121770844},
                                                                     {13, -31.139403219565178},
                                                                     {14, -9.3529243588444784},
                                                                     {15, 35.816841486394084}},
                                                                    {{0, 19.985053242002434},
                                                                     {5, -387.03730874935177},
                                                                     {6, -189.17813819516757},
                                                                     {7, 527.80815920542365},
                                                                     {8, -11.573902539959630},
                                                                     {9, 6.8812326946963000},
                                                                     {10, -1.0006050966910838},
                                                                     {11, 0.77771377980534432},
                                                                     {12, -2.7782057523535084},
                                                                     {13, -60.196695231264121},
                                                                     {14, 84.320405506677161},
                                                                     {15, 11.992291136182789}},
                                                                    {{0, -25.693933462703749},
                                                                     {5, -154.18974869023643},
                                                                     {6, -231.52937917604550},
                                                                     {7, 357.63911791061412},
                                                                     {8, 93.405324183624310},
                                                                     {9, -37.458323136451633},
                                                                     {10, 104.09964950896230},
                                                                     {11, 29.840293426660503},
                                                                     {12, -43.533456590011144},
                                                                     {13, 96.324553959188283},
                                                                     {14, -39.177261675615439},
                                                                     {15, -149.72683625798563}}};
        std::vector<std::vector<double>> out;
        for (const auto& row : d) {
          out.emplace_back(16, 0.0);
          for (const auto& [i, v] : row) out.back()[static_cast<std::size_t>(i)] = v;
        }
        return out;
      }();
      hairer_weights(th, b, 12, {rows[0].data(), rows[1].data(), rows[2].data(), rows[3].data()},
                     w);
      return w;
    }
  }
  return {};
}

// y(t + theta h) = y + h sum_i w_i(theta) k_i from one step's stages (recorded in grad mode).
static State dense_state(const Tableau& tb, double theta, double h, const State& y,
                         const std::vector<State>& k) {
  const std::vector<double> w = tb.dense_weights(theta);
  State out;
  for (std::size_t c = 0; c < y.size(); ++c) {
    Tensor acc = y[c];
    for (std::size_t i = 0; i < w.size(); ++i)
      if (w[i] != 0) acc = acc + k[i][c] * (h * w[i]);
    out.push_back(acc);
  }
  return out;
}

State Solution::at(double t) const {
  const double lo = std::min(t0_, t_end_), hi = std::max(t0_, t_end_);
  if (!(t >= lo && t <= hi))
    fail<ValueError>("Solution::at: t = ", t, " lies outside the solved interval [", lo, ", ", hi,
                     "]");
  if (steps_.empty()) fail<ValueError>("Solution::at: the solve took no step");
  // the step whose [t, t + h] holds t (steps are in the direction of integration)
  const double dir = t_end_ >= t0_ ? 1.0 : -1.0;
  std::size_t k = 0;
  {
    std::size_t a = 0, b = steps_.size();
    while (b - a > 1) {
      const std::size_t m = (a + b) / 2;
      if ((t - steps_[m].t) * dir >= 0) {
        a = m;
      } else {
        b = m;
      }
    }
    k = a;
  }
  const Step& st = steps_[k];
  return dense_state(*tb_, std::clamp((t - st.t) / st.h, 0.0, 1.0), st.h, st.y, st.k);
}

namespace {

// y + h sum_j w_j k_j, skipping zero weights
State combine(const State& y, double h, const std::vector<const State*>& ks, const double* w,
              int n) {
  State out;
  for (std::size_t c = 0; c < y.size(); ++c) {
    Tensor acc;
    for (int j = 0; j < n; ++j) {
      if (w[j] == 0) continue;
      const Tensor term = (*ks[static_cast<std::size_t>(j)])[c] * (h * w[j]);
      acc = acc.defined() ? acc + term : term;
    }
    out.push_back(acc.defined() ? y[c] + acc : y[c]);
  }
  return out;
}

struct StepResult {
  State y;
  State err;             // h sum (b - b_hat) k (empty without an embedded pair)
  State k_last;          // f at the new point when the tableau is FSAL
  std::vector<State> k;  // every stage, for dense output (FSAL tableaux)
  State err3;            // h sum e3 k (tableaux with a second error estimate)
  State y_stiff;         // the state of the last stage with c = 1 before the FSAL stage
};

// One Runge-Kutta step from (t, y) of size h; k0 = f(t, y) when known (FSAL). With
// `solution_only` (a replay that needs only y(t + h)), stages of zero weight in b at the end
// (the FSAL stage) and the error estimate are skipped.
StepResult rk_step(const Dynamics& f, const Tableau& tb, double t, double h, const State& y,
                   const State* k0, int64_t& nfe, bool solution_only = false) {
  const int s = tb.stages();
  std::vector<State> k(static_cast<std::size_t>(s));
  std::vector<const State*> kp;
  StepResult r;
  for (int i = 0; i < s; ++i) {
    if (i == 0 && k0) {
      k[0] = *k0;
    } else if (tb.fsal && i == s - 1) {
      break;  // the last stage is f at the new point, evaluated below
    } else {
      State yi = i == 0 ? y : combine(y, h, kp, &tb.a[static_cast<std::size_t>(i * s)], i);
      if (tb.fsal && i == s - 2 && tb.c[static_cast<std::size_t>(i)] == 1.0) r.y_stiff = yi;
      k[static_cast<std::size_t>(i)] = f(t + tb.c[static_cast<std::size_t>(i)] * h, yi);
      ++nfe;
    }
    kp.push_back(&k[static_cast<std::size_t>(i)]);
  }
  r.y = combine(y, h, kp, tb.b.data(), static_cast<int>(kp.size()));
  if (solution_only) return r;  // the FSAL stage has weight 0 in b
  if (tb.fsal) {
    k[static_cast<std::size_t>(s - 1)] = f(t + h, r.y);
    ++nfe;
    kp.push_back(&k[static_cast<std::size_t>(s - 1)]);
    r.k_last = k[static_cast<std::size_t>(s - 1)];
  }
  if (!tb.b_hat.empty()) {
    std::vector<double> d(static_cast<std::size_t>(s));
    for (int i = 0; i < s; ++i)
      d[static_cast<std::size_t>(i)] =
          tb.b[static_cast<std::size_t>(i)] - tb.b_hat[static_cast<std::size_t>(i)];
    State zero;
    for (const Tensor& c : y) zero.push_back(zeros_like(c));
    r.err = combine(zero, h, kp, d.data(), static_cast<int>(kp.size()));
    if (!tb.e3.empty()) r.err3 = combine(zero, h, kp, tb.e3.data(), static_cast<int>(kp.size()));
  }
  if (tb.interpolant != Interpolant::none || tb.fsal) r.k = std::move(k);  // dense, stiffness
  return r;
}

// Appends the stages used only by the dense output (DOP853's three) to an accepted step's
// stages k (all of them, the FSAL stage included), once: k_i = f(t + c_i h, y + h sum_j a_ij k_j).
void add_dense_stages(const Dynamics& f, const Tableau& tb, double t, double h, const State& y,
                      std::vector<State>& k, int64_t& nfe) {
  while (k.size() < static_cast<std::size_t>(tb.dense_stages())) {
    const std::size_t i = k.size() - static_cast<std::size_t>(tb.stages());
    std::vector<const State*> kp;
    for (const State& ki : k) kp.push_back(&ki);
    const State yi = combine(y, h, kp, tb.dense_a[i].data(), static_cast<int>(kp.size()));
    k.push_back(f(t + tb.dense_c[i] * h, yi));
    ++nfe;
  }
}

double atol_of(const Options& o, std::size_t c) {
  return c < o.component_atol.size() ? o.component_atol[c] : o.atol;
}
// RMS over all (non-excluded) elements of e / (atol + rtol max(|y0|, |y1|)); with a second
// estimate e3 (DOP853), Hairer's combination S5 / sqrt((S5 + 0.01 S3) n) of the two sums of
// squares.
double error_norm(const State& err, const State& y0, const State& y1, const Options& o,
                  const State* err3 = nullptr) {
  NoGradGuard off;
  double s5 = 0, s3 = 0;
  int64_t n = 0;
  for (std::size_t c = 0; c < err.size(); ++c) {
    if (c < o.exclude_from_norm.size() && o.exclude_from_norm[c]) continue;
    const Tensor sc = maximum(abs(y0[c].detach()), abs(y1[c].detach())) * o.rtol + atol_of(o, c);
    s5 += sum(square(err[c].detach() / sc)).item();
    if (err3 && !err3->empty()) s3 += sum(square((*err3)[c].detach() / sc)).item();
    n += err[c].numel();
  }
  if (!n) return 0.0;
  if (err3 && !err3->empty()) return s5 == 0 ? 0.0 : s5 / std::sqrt((s5 + 0.01 * s3) * double(n));
  return std::sqrt(s5 / double(n));
}
double state_norm(const State& v, const State& scale_of, const Options& o) {
  NoGradGuard off;
  double total = 0;
  int64_t n = 0;
  for (std::size_t c = 0; c < v.size(); ++c) {
    if (c < o.exclude_from_norm.size() && o.exclude_from_norm[c]) continue;
    total +=
        sum(square(v[c].detach() / (abs(scale_of[c].detach()) * o.rtol + atol_of(o, c)))).item();
    n += v[c].numel();
  }
  return n ? std::sqrt(total / double(n)) : 0.0;
}
double squared_distance(const State& a, const State& b) {
  NoGradGuard off;
  double total = 0;
  for (std::size_t c = 0; c < a.size(); ++c)
    total += sum(square(a[c].detach() - b[c].detach())).item();
  return total;
}
bool finite(const State& y) {
  NoGradGuard off;
  for (const Tensor& c : y) {
    const double s = sum(abs(c.detach())).item();
    if (!std::isfinite(s)) return false;
  }
  return true;
}

// Hairer, Norsett & Wanner's starting step (I, II.4): an explicit Euler probe h0 = 0.01 |y0| /
// |f0| (at most the interval), then h1 = (0.01 / max(|f0|, |f'|))^(1/(order+1)) with f' from
// the probe; the step is min(100 h0, h1, span).
double initial_step(const Dynamics& f, const State& y0, const State& f0, double t0, double dir,
                    int order, double span, const Options& o, int64_t& nfe) {
  const double d0 = state_norm(y0, y0, o), d1 = state_norm(f0, y0, o);
  const double h0 = std::min((d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1, span);
  State y1;
  {
    NoGradGuard off;
    for (std::size_t c = 0; c < y0.size(); ++c)
      y1.push_back(y0[c].detach() + f0[c].detach() * (dir * h0));
  }
  State f1;
  {
    NoGradGuard off;
    f1 = f(t0 + dir * h0, y1);
  }
  ++nfe;
  State df;
  for (std::size_t c = 0; c < f0.size(); ++c) df.push_back(f1[c].detach() - f0[c].detach());
  const double d2 = state_norm(df, y0, o) / h0;
  const double dm = std::max(d1, d2);
  const double h1 =
      dm <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dm, 1.0 / (order + 1));
  return std::min({100 * h0, h1, span});
}

}  // namespace

static void check_options(const char* who, const State& y0, double t0, double t1,
                          const Options& o) {
  if (!std::isfinite(t0) || !std::isfinite(t1))
    fail<ValueError>(who, ": t0 = ", t0, " and t1 = ", t1, " must be finite");
  if (y0.empty()) fail<ValueError>(who, ": the initial state has no components");
  double eps = std::numeric_limits<double>::epsilon();
  for (std::size_t c = 0; c < y0.size(); ++c) {
    if (!y0[c].defined()) fail<ValueError>(who, ": initial state component ", c, " is undefined");
    if (!is_floating(y0[c].dtype()))
      fail<DTypeError>(who, ": initial state component ", c, " is ", describe(y0[c]),
                       "; states are floating");
    if (y0[c].dtype() == DType::f32) eps = std::numeric_limits<float>::epsilon();
  }
  const bool adaptive = o.fixed_step <= 0;
  if (std::isnan(o.fixed_step) || std::isinf(o.fixed_step))
    fail<ValueError>(who, ": fixed_step = ", o.fixed_step, " must be finite");
  if (adaptive) {
    if (!(o.rtol > 0) || !std::isfinite(o.rtol))
      fail<ValueError>(who, ": rtol = ", o.rtol, " must be finite and > 0");
    if (!(o.atol >= 0) || !std::isfinite(o.atol))
      fail<ValueError>(who, ": atol = ", o.atol, " must be finite and >= 0");
    if (o.rtol < 10 * eps)
      fail<ValueError>(who, ": rtol = ", o.rtol,
                       " is below the state's resolution (10 eps = ", 10 * eps, " for ",
                       eps == std::numeric_limits<float>::epsilon() ? "float32" : "float64",
                       "); the error estimate would be round-off");
    if (!(o.h0 >= 0) || !std::isfinite(o.h0))
      fail<ValueError>(who, ": h0 = ", o.h0, " must be finite and >= 0 (0: automatic)");
    if (!(o.min_step >= 0) || !std::isfinite(o.min_step))
      fail<ValueError>(who, ": min_step = ", o.min_step, " must be finite and >= 0");
    if (!(o.safety > 0 && o.safety <= 1) || !(o.fac_min > 0 && o.fac_min < 1) || !(o.fac_max > 1) ||
        !std::isfinite(o.fac_max))
      fail<ValueError>(who, ": step control needs 0 < safety <= 1, 0 < fac_min < 1 < fac_max (got ",
                       o.safety, ", ", o.fac_min, ", ", o.fac_max, ")");
    if (!(o.beta >= 0 && o.beta <= 0.1))
      fail<ValueError>(who, ": beta = ", o.beta, " must lie in [0, 0.1] (Hairer's DOPRI5: 0.04)");
  }
  if (o.max_steps < 1) fail<ValueError>(who, ": max_steps = ", o.max_steps, " must be >= 1");
  if (!(o.max_step >= 0) || !std::isfinite(o.max_step))
    fail<ValueError>(who, ": max_step = ", o.max_step, " must be finite and >= 0 (0: no limit)");
  if (!o.component_atol.empty()) {
    if (o.component_atol.size() != y0.size())
      fail<ValueError>(who, ": component_atol has ", o.component_atol.size(),
                       " entries for a state of ", y0.size(), " components");
    for (double a : o.component_atol)
      if (!(a >= 0) || !std::isfinite(a))
        fail<ValueError>(who, ": component_atol entry ", a, " must be finite and >= 0");
  }
  if (!o.step_grid.empty()) {
    if (o.fixed_step > 0) fail<ValueError>(who, ": give step_grid or fixed_step, not both");
    const std::vector<double>& g = o.step_grid;
    if (g.size() < 2 || g.front() != t0 || g.back() != t1)
      fail<ValueError>(who, ": step_grid must start at t0 = ", t0, " and end at t1 = ", t1);
    for (std::size_t i = 1; i < g.size(); ++i)
      if (!std::isfinite(g[i]) || !((g[i] - g[i - 1]) * (t1 >= t0 ? 1 : -1) > 0))
        fail<ValueError>(who,
                         ": step_grid must be strictly monotone in the direction of "
                         "integration (",
                         g[i - 1], " then ", g[i], ")");
  }
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  for (std::size_t i = 0; i < o.output_times.size(); ++i) {
    const double to = o.output_times[i];
    if (!std::isfinite(to) || (to - t0) * dir < -1e-15 || (t1 - to) * dir < -1e-15)
      fail<ValueError>(who, ": output time ", to, " lies outside [", std::min(t0, t1), ", ",
                       std::max(t0, t1), "]");
    if (i > 0 && (to - o.output_times[i - 1]) * dir < 0)
      fail<ValueError>(who, ": output_times must be sorted in the direction of integration (",
                       o.output_times[i - 1], " then ", to, ")");
  }
}

Result odeint(const Dynamics& f, const State& y0, double t0, double t1, const Options& o) {
  check_options("odeint", y0, t0, t1, o);
  const Tableau& tb = o.method ? *o.method : dopri5();
  Result r;
  r.y = y0;
  r.t = t0;
  const double dir = t1 >= t0 ? 1.0 : -1.0;
  const double span = std::abs(t1 - t0);
  std::vector<double> outs = o.output_times;
  std::size_t next_out = 0;
  auto emit = [&](double t) {
    while (next_out < outs.size() &&
           std::abs(outs[next_out] - t) <= 1e-12 * std::max(1.0, std::abs(t))) {
      r.ys.push_back(r.y);
      ++next_out;
    }
  };
  emit(t0);
  // Methods with an interpolant evaluate output times inside steps; others end steps there.
  const bool interpolate = tb.interpolant != Interpolant::none;
  std::shared_ptr<Solution> solution;
  if (o.dense) {
    if (!interpolate)
      fail<ValueError>(
          "odeint: dense output needs a method with an interpolant (dopri5, tsit5, "
          "bosh3, dop853), not ",
          tb.name);
    solution = std::make_shared<Solution>(tb, t0, t0);
    r.solution = solution;
  }
  if (span == 0) return r;
  // After an accepted step from (t_old, y_old) of signed size hs: outputs in (t_old, t_new]
  // from the step's stages, and the step itself for the dense solution.
  // The step's dense-only stages (DOP853's three), evaluated the first time they are needed.
  auto dense_ready = [&](double t_old, double h_signed, const State& y_old, StepResult& s) {
    add_dense_stages(f, tb, t_old, h_signed, y_old, s.k, r.nfe);
  };
  auto interpolate_step = [&](double t_old, double h_signed, const State& y_old, double t_new,
                              StepResult& s) {
    while (next_out < outs.size() && (outs[next_out] - t_new) * dir <= 0) {
      const double theta = (outs[next_out] - t_old) / h_signed;
      if (std::abs(outs[next_out] - t_new) <= 1e-12 * std::max(1.0, std::abs(t_new))) {
        r.ys.push_back(r.y);
      } else {
        dense_ready(t_old, h_signed, y_old, s);
        r.ys.push_back(dense_state(tb, theta, h_signed, y_old, s.k));
      }
      ++next_out;
    }
    if (solution) {
      dense_ready(t_old, h_signed, y_old, s);
      solution->add({t_old, h_signed, y_old, std::move(s.k)});
      solution->set_end(t_new);
    }
  };
  // After an accepted step: did the event change sign in it? Then bisect on the dense output
  // for the crossing, stop there (outputs up to it are emitted) and report Status::event.
  double event_prev = 0;
  double t = t0;
  auto event_stop = [&](double t_old, double h_signed, const State& y_old, StepResult& s) {
    const double g_new = o.event(t, r.y);
    if (!std::isfinite(g_new))
      fail<ValueError>("odeint: the event function returned ", g_new, " at t = ", t);
    if (g_new != 0 && (g_new > 0) == (event_prev > 0) && event_prev != 0) {
      event_prev = g_new;
      return false;
    }
    if (event_prev == 0 && g_new != 0) {  // started on the event surface: no crossing yet
      event_prev = g_new;
      return false;
    }
    dense_ready(t_old, h_signed, y_old, s);
    auto state_at = [&](double theta) {
      NoGradGuard off;  // the search itself is not recorded
      return dense_state(tb, theta, h_signed, y_old, s.k);
    };
    double lo = 0, hi = 1;
    for (int it = 0; it < 200 && std::abs(hi - lo) * std::abs(h_signed) >
                                     1e-12 * std::max(1.0, std::abs(t_old));
         ++it) {
      const double mid = 0.5 * (lo + hi);
      const double g = o.event(t_old + mid * h_signed, state_at(mid));
      if (g == 0 || (g > 0) != (event_prev > 0)) {
        hi = mid;
      } else {
        lo = mid;
      }
    }
    // the state at the crossing, recorded like the outputs (differentiable when recorded)
    t = t_old + hi * h_signed;
    r.y = dense_state(tb, hi, h_signed, y_old, s.k);
    interpolate_step(t_old, h_signed, y_old, t, s);
    r.status = Status::event;
    return true;
  };
  const bool on_grid = !o.step_grid.empty();
  const bool adaptive = o.fixed_step <= 0 && !on_grid;
  if (o.event && !interpolate)
    fail<ValueError>(
        "odeint: a terminal event needs a method with an interpolant (dopri5, "
        "tsit5, bosh3, dop853), not ",
        tb.name);
  if (adaptive && tb.b_hat.empty())
    fail<ValueError>("odeint: method ", tb.name, " has no error estimate; give fixed_step for it");
  State k0;
  bool have_k0 = false;
  double h;
  // the order of the step's error estimate (4 for dopri5 and tsit5, 7 for dop853, 2 for bosh3)
  const int error_order = std::min(tb.order, std::max(tb.embedded_order, 1));
  if (adaptive) {
    k0 = f(t0, y0);
    ++r.nfe;
    have_k0 = true;
    // the starting step's order is the error estimate's, as the controller's exponent below
    h = o.h0 > 0 ? o.h0 : initial_step(f, y0, k0, t0, dir, error_order, span, o, r.nfe);
  } else {
    h = on_grid ? std::abs(o.step_grid[1] - o.step_grid[0]) : o.fixed_step;
  }
  std::size_t grid_next = 1;  // step_grid: the step ends at step_grid[grid_next]
  if (o.event) event_prev = o.event(t0, y0);
  // Hairer's counters: accepted steps with h |lambda| above the boundary, and the run of steps
  // below it (6 in a row reset the first)
  int stiff_count = 0, nonstiff_run = 0;
  // Step control: err ~ C h^q with q = the error estimate's order + 1, so the step that would
  // give err = 1 is h err^(-1/q); beta > 0 adds Hairer's PI term (err_prev^beta).
  const double expo = 1.0 / (error_order + 1);
  const double alpha = expo - 0.75 * o.beta;
  double err_prev = 1e-4;              // Hairer's starting value of the previous error
  bool rejected_since_accept = false;  // a step after a rejection does not grow
  while ((t1 - t) * dir > 1e-14 * std::max(1.0, std::abs(t1))) {
    if (r.steps + r.rejected >= o.max_steps) {
      r.status = Status::too_many_steps;
      break;
    }
    // Land exactly on t1, and on the next output time unless the method interpolates.
    double target = t1;
    if (!interpolate && next_out < outs.size()) target = outs[next_out];
    if (on_grid) {
      target = o.step_grid[grid_next];
      h = std::abs(target - t);
    }
    if (o.max_step > 0) h = std::min(h, o.max_step);
    double hs = std::min(h, std::abs(target - t));
    // h < rest < 2 h: two halves instead of h and a sliver (same count, smaller errors)
    if (adaptive && std::abs(target - t) > h && std::abs(target - t) < 2 * h)
      hs = std::abs(target - t) / 2;
    const bool lands = hs >= std::abs(target - t) * (1 - 1e-12);
    if (adaptive && hs < o.min_step && !lands) {
      r.status = Status::step_underflow;
      break;
    }
    StepResult s = rk_step(f, tb, t, dir * hs, r.y, have_k0 && tb.fsal ? &k0 : nullptr, r.nfe);
    if (!adaptive) {
      if (!finite(s.y)) {
        r.status = Status::non_finite;
        break;
      }
      if (o.on_accept) o.on_accept(t, dir * hs, r.y);
      const double t_old = t;
      State y_old = std::move(r.y);
      r.y = std::move(s.y);
      if (tb.fsal) {  // the next step's first stage is this step's last
        k0 = s.k_last;
        have_k0 = true;
      }
      t = lands ? target : t + dir * hs;
      if (on_grid && lands) ++grid_next;
      ++r.steps;
      if (o.event && event_stop(t_old, dir * hs, y_old, s)) break;
      if (interpolate) {
        interpolate_step(t_old, dir * hs, y_old, t, s);
      } else {
        emit(t);
      }
      continue;
    }
    double err = error_norm(s.err, r.y, s.y, o, &s.err3);
    if (!std::isfinite(err) || !finite(s.y)) {
      ++r.rejected;
      h = hs * o.fac_min;
      rejected_since_accept = true;
      if (h < o.min_step) {
        r.status = Status::non_finite;
        break;
      }
      continue;
    }
    if (err <= 1.0) {
      if (o.on_accept) o.on_accept(t, dir * hs, r.y);
      const double t_old = t;
      State y_old = std::move(r.y);
      r.y = std::move(s.y);
      t = lands ? target : t + dir * hs;
      ++r.steps;
      if (tb.fsal) {
        k0 = s.k_last;
      } else {
        have_k0 = false;
      }
      // Hairer's stiffness test: h |lambda| ~ h |k_last - k_s| / |y1 - y_s|, both stages at
      // t + h; above the method's stability boundary on 15 accepted steps (6 below it in a row
      // start the count again): stiff.
      if (!s.y_stiff.empty() && s.k.size() >= 2 && !r.stiffness_detected) {
        const double num =
            squared_distance(s.k_last, s.k[static_cast<std::size_t>(tb.stages() - 2)]);
        const double den = squared_distance(r.y, s.y_stiff);
        const double boundary = tb.name == "dop853" ? 6.1 : 3.25;
        if (den > 0 && hs * std::sqrt(num / den) > boundary) {
          ++stiff_count;
          nonstiff_run = 0;
        } else if (++nonstiff_run >= 6) {
          stiff_count = 0;
        }
        if (stiff_count >= 15) {
          r.stiffness_detected = true;
          r.stiff_at = t;
        }
      }
      if (o.event && event_stop(t_old, dir * hs, y_old, s)) break;
      if (interpolate) {
        interpolate_step(t_old, dir * hs, y_old, t, s);
      } else {
        emit(t);
      }
      const double e = std::max(err, 1e-10);  // err = 0: grow by fac_max
      // h_new = h clamp(safety err^-alpha err_prev^beta, fac_min, fac_max), alpha = 1/q - 0.75 beta
      const double fac = o.safety * std::pow(e, -alpha) * std::pow(err_prev, o.beta);
      h = hs * std::clamp(fac, o.fac_min, o.fac_max);
      if (rejected_since_accept) h = std::min(h, hs);
      rejected_since_accept = false;
      err_prev = std::max(err, 1e-4);
    } else {
      ++r.rejected;
      // rejected: h_new = h max(fac_min, safety err^-alpha)
      h = hs * std::max(o.fac_min, o.safety * std::pow(err, -alpha));
      rejected_since_accept = true;
    }
  }
  r.t = t;
  return r;
}

// ---- continuous adjoint --------------------------------------------------------------------
namespace {
// The forward pass's accepted states: ys[k] at ts[k], from t0 to t1 inclusive.
struct StateCheckpoints {
  std::vector<double> ts;
  std::vector<State> ys;
};

// The continuous adjoint. With `record`, the backward solve itself is recorded on the tape
// (each evaluation's VJP with create_graph, the augmented state never detached), so the
// returned gradients are differentiable again in y1, dl_dy1 and the parameters.
AdjointGradients adjoint_solve(const Dynamics& f, const std::vector<Tensor>& params,
                               const State& y1, double t0, double t1, const State& dl_dy1,
                               const AdjointOptions& o, bool record,
                               const StateCheckpoints* cps = nullptr) {
  const std::size_t n = y1.size(), p = params.size();
  // Augmented state [y (n), a (n), g_theta (p)], integrated from t1 back to t0.
  auto vjp_at = [&](double t, const State& y, const State& a, State* fy) {
    EnableGradGuard on;
    std::optional<Scope> scope;  // unrecorded: this evaluation's graph is released on return
    if (!record) scope.emplace();
    std::vector<Tensor> inputs;
    for (const Tensor& c : y)
      inputs.push_back(record && is_tracked(c.impl()) ? c : c.detach().requires_grad_());
    const State out = f(t, inputs);
    std::vector<Tensor> wrt = inputs;
    for (const Tensor& q : params) wrt.push_back(q);
    // partial: a recorded y depends on the parameters through the forward solve; only f's
    // direct dependence belongs here
    std::vector<Tensor> g =
        sg::grad(out, wrt, a, {.create_graph = record, .allow_unused = true, .partial = true});
    if (fy)
      for (const Tensor& c : out) fy->push_back(record ? c : c.detach());
    return g;  // [a^T df/dy (n), a^T df/dtheta (p)]
  };
  const Dynamics aug = [&](double t, const State& s) {
    const State y(s.begin(), s.begin() + static_cast<long>(n)),
        a(s.begin() + static_cast<long>(n), s.begin() + static_cast<long>(2 * n));
    State fy;
    const std::vector<Tensor> g = vjp_at(t, y, a, &fy);
    State ds = fy;                                                // dy/dt = f
    for (std::size_t i = 0; i < n; ++i) ds.push_back(-g[i]);      // da/dt = -a^T df/dy
    for (std::size_t j = 0; j < p; ++j) ds.push_back(-g[n + j]);  // dg/dt = -a^T df/dtheta
    return ds;
  };
  AdjointGradients out;
  {
    // dL/dt1 = a(t1)^T f(t1, y1)
    NoGradGuard off;
    const State f1 = [&] {
      EnableGradGuard on;
      Scope scope;
      State r;
      for (const Tensor& c : f(t1, y1)) r.push_back(c.detach());
      return r;
    }();
    for (std::size_t i = 0; i < n; ++i) out.dt1 += sum(dl_dy1[i] * f1[i]).item();
  }
  State s0;
  for (const Tensor& c : y1) s0.push_back(record ? c : c.detach());
  for (const Tensor& c : dl_dy1) s0.push_back(record ? c : c.detach());
  for (const Tensor& q : params) s0.push_back(zeros_like(q));
  Options bo = o.backward.value_or(o.forward);
  bo.output_times.clear();
  bo.on_accept = nullptr;
  if (o.seminorm) {
    bo.exclude_from_norm.assign(2 * n + p, false);
    for (std::size_t j = 0; j < p; ++j) bo.exclude_from_norm[2 * n + j] = true;
  }
  std::optional<NoGradGuard> off;
  std::optional<EnableGradGuard> on;
  if (record) {
    on.emplace();
  } else {
    off.emplace();
  }
  if (cps && !record && cps->ts.size() >= 2) {
    // One backward solve per forward step, the state restarted from the forward's value at
    // each step's end; the first try is the whole step (the controller shrinks it if needed).
    State cur = s0;
    Result& total = out.backward;
    for (std::size_t k = cps->ts.size() - 1; k-- > 0;) {
      for (std::size_t i = 0; i < n; ++i) cur[i] = cps->ys[k + 1][i];
      Options seg = bo;
      seg.h0 = std::abs(cps->ts[k + 1] - cps->ts[k]);
      seg.max_steps = bo.max_steps - total.steps - total.rejected;
      Result r;
      if (seg.max_steps > 0) {
        r = odeint(aug, cur, cps->ts[k + 1], cps->ts[k], seg);
      } else {
        r.status = Status::too_many_steps;
        r.t = cps->ts[k + 1];
      }
      total.nfe += r.nfe;
      total.steps += r.steps;
      total.rejected += r.rejected;
      total.t = r.t;
      total.status = r.status;
      if (!r.ok()) break;
      cur = std::move(r.y);
    }
    for (std::size_t i = 0; i < n; ++i) cur[i] = cps->ys[0][i];
    total.y = std::move(cur);
  } else {
    out.backward = odeint(aug, s0, t1, t0, bo);
  }
  if (!out.backward.ok())
    fail<SolveError>("odeint_adjoint: the backward (adjoint) solve from t = ", t1, " to ", t0,
                     " stopped at t = ", out.backward.t, " (", status_name(out.backward.status),
                     ", ", out.backward.steps,
                     " steps); no gradient. Loosen the backward "
                     "tolerances or raise max_steps");
  const State& s = out.backward.y;
  for (std::size_t i = 0; i < n; ++i) out.dy0.push_back(s[n + i]);
  for (std::size_t j = 0; j < p; ++j) out.dparams.push_back(s[2 * n + j]);
  // dL/dt0 = -a(t0)^T f(t0, y(t0))
  State f0;
  {
    EnableGradGuard on;
    Scope scope;
    for (const Tensor& c : f(t0, State(s.begin(), s.begin() + static_cast<long>(n))))
      f0.push_back(c.detach());
  }
  for (std::size_t i = 0; i < n; ++i) out.dt0 -= sum(out.dy0[i] * f0[i]).item();
  return out;
}
}  // namespace

AdjointGradients adjoint_gradients(const Dynamics& f, const std::vector<Tensor>& params,
                                   const State& y1, double t0, double t1, const State& dl_dy1,
                                   const AdjointOptions& o) {
  return adjoint_solve(f, params, y1, t0, t1, dl_dy1, o, false);
}

namespace {

// Packs a state into one flat tensor and back (custom ops have one output).
Tensor pack(const State& y) {
  std::vector<Tensor> flat;
  for (const Tensor& c : y) flat.push_back(reshape(c, {-1}));
  return concat(flat, 0);
}
State unpack(const Tensor& flat, const State& like) {
  State out;
  int64_t off = 0;
  for (const Tensor& c : like) {
    out.push_back(reshape(slice(flat, 0, off, off + c.numel()), c.shape()));
    off += c.numel();
  }
  return out;
}
Result record(Result r, const State& y0, const std::vector<Tensor>& params,
              std::shared_ptr<const CustomRule> rule) {
  std::vector<Tensor> inputs = y0;
  inputs.insert(inputs.end(), params.begin(), params.end());
  const Tensor packed = custom_op(inputs, pack(r.y), std::move(rule));
  r.y = unpack(packed, r.y);
  return r;
}

// Raised by a VJP of a solve whose forward pass did not reach t1.
[[noreturn]] void forward_failed(const char* who, const Result& r, double t1) {
  fail<SolveError>(who, ": the forward solve stopped at t = ", r.t, " before t1 = ", t1, " (",
                   status_name(r.status), "); its result has no gradient");
}

struct AdjointRule : CustomRule {
  Dynamics f;
  std::vector<Tensor> params;
  State y1;
  double t0, t1;
  AdjointOptions o;
  StateCheckpoints checkpoints;  // empty unless o.checkpoint_states
  Result forward;                // status and where it stopped
  std::shared_ptr<BackwardStats> stats = std::make_shared<BackwardStats>();
  std::string name() const override { return "odeint_adjoint"; }
  std::vector<Tensor> vjp(std::span<const Tensor>, const Tensor& out,
                          const Tensor& cot) const override {
    if (!forward.ok()) forward_failed("odeint_adjoint", forward, t1);
    // Under create_graph the backward solve is recorded from the recorded y(t1) (`out`), so
    // its result is differentiable again: second order through the adjoint.
    const bool record = grad_enabled();
    const AdjointGradients g = adjoint_solve(f, params, record ? unpack(out, y1) : y1, t0, t1,
                                             unpack(cot, y1), o, record, &checkpoints);
    stats->nfe += g.backward.nfe;
    stats->steps += g.backward.steps;
    stats->rejected += g.backward.rejected;
    ++stats->solves;
    std::vector<Tensor> shares = g.dy0;
    shares.insert(shares.end(), g.dparams.begin(), g.dparams.end());
    return shares;
  }
};

struct CheckpointRule : CustomRule {
  Dynamics f;
  std::vector<Tensor> params;
  const Tableau* tb;
  std::vector<double> ts, hs;  // accepted steps: start time and signed size
  std::vector<State> ys;       // state at the start of each accepted step
  State y1;
  double t1 = 0;
  Result forward;
  std::shared_ptr<BackwardStats> stats = std::make_shared<BackwardStats>();
  std::string name() const override { return "odeint_checkpointed"; }
  std::vector<Tensor> vjp(std::span<const Tensor> inputs, const Tensor&,
                          const Tensor& cot) const override {
    if (!forward.ok()) forward_failed("odeint_checkpointed", forward, t1);
    if (grad_enabled()) return recorded_vjp(inputs, cot);
    State a = unpack(cot, y1);
    std::vector<Tensor> gp;
    for (const Tensor& q : params) gp.push_back(zeros_like(q));
    for (std::size_t k = ts.size(); k-- > 0;) {
      EnableGradGuard on;
      Scope scope;
      State leaf;
      for (const Tensor& c : ys[k]) leaf.push_back(c.detach().requires_grad_());
      int64_t nfe = 0;
      const State next = rk_step(f, *tb, ts[k], hs[k], leaf, nullptr, nfe, true).y;
      stats->nfe += nfe;
      ++stats->steps;
      std::vector<Tensor> wrt = leaf;
      wrt.insert(wrt.end(), params.begin(), params.end());
      const std::vector<Tensor> g = sg::grad(next, wrt, a, {.allow_unused = true});
      for (std::size_t i = 0; i < a.size(); ++i) a[i] = g[i].detach();
      for (std::size_t j = 0; j < gp.size(); ++j) gp[j] = (gp[j] + g[a.size() + j]).detach();
    }
    ++stats->solves;
    std::vector<Tensor> out = a;
    out.insert(out.end(), gp.begin(), gp.end());
    return out;
  }
  // Under create_graph: the accepted steps replayed from the recorded inputs (y0, params) on
  // the tape, then one reverse pass with create_graph, so the gradient is differentiable again
  // (memory of the whole solve, as backprop; step sizes held fixed as in the forward pass).
  std::vector<Tensor> recorded_vjp(std::span<const Tensor> inputs, const Tensor& cot) const {
    State y(inputs.begin(), inputs.begin() + static_cast<long>(y1.size()));
    int64_t nfe = 0;
    for (std::size_t k = 0; k < ts.size(); ++k)
      y = rk_step(f, *tb, ts[k], hs[k], y, nullptr, nfe, true).y;
    stats->nfe += nfe;
    stats->steps += static_cast<int64_t>(ts.size());
    ++stats->solves;
    return sg::grad(y, std::vector<Tensor>(inputs.begin(), inputs.end()), unpack(cot, y1),
                    {.create_graph = true, .allow_unused = true});
  }
};

}  // namespace

namespace {
// One recorded solve from t0 to t1 whose VJP is the continuous adjoint.
Result adjoint_segment(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                       double t0, double t1, const AdjointOptions& o,
                       const std::shared_ptr<BackwardStats>& stats) {
  auto rule = std::make_shared<AdjointRule>();
  rule->stats = stats;
  Options fo = o.forward;
  fo.output_times.clear();
  if (o.checkpoint_states)
    fo.on_accept = [&, user = o.forward.on_accept](double t, double h, const State& y) {
      rule->checkpoints.ts.push_back(t);
      rule->checkpoints.ys.push_back(y);
      if (user) user(t, h, y);
    };
  Result r;
  {
    NoGradGuard off;
    State y0d;
    for (const Tensor& c : y0) y0d.push_back(c.detach());
    r = odeint(f, y0d, t0, t1, fo);
  }
  if (o.checkpoint_states) {
    rule->checkpoints.ts.push_back(r.t);
    rule->checkpoints.ys.push_back(r.y);
  }
  rule->f = f;
  rule->params = params;
  rule->y1 = r.y;
  rule->t0 = t0;
  rule->t1 = t1;
  rule->o = o;
  rule->o.forward.output_times.clear();
  rule->forward.status = r.status;
  rule->forward.t = r.t;
  r.backward = stats;
  return record(std::move(r), y0, params, rule);
}

// One recorded solve from t0 to t1 whose VJP replays its accepted steps.
Result checkpointed_segment(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                            double t0, double t1, const Options& o,
                            const std::shared_ptr<BackwardStats>& stats) {
  auto rule = std::make_shared<CheckpointRule>();
  rule->stats = stats;
  rule->f = f;
  rule->params = params;
  rule->tb = o.method ? o.method : &dopri5();
  Options oo = o;
  oo.output_times.clear();
  oo.on_accept = [&, user = o.on_accept](double t, double h, const State& y) {
    rule->ts.push_back(t);
    rule->hs.push_back(h);
    rule->ys.push_back(y);
    if (user) user(t, h, y);
  };
  Result r;
  {
    NoGradGuard off;
    State y0d;
    for (const Tensor& c : y0) y0d.push_back(c.detach());
    r = odeint(f, y0d, t0, t1, oo);
  }
  rule->y1 = r.y;
  rule->t1 = t1;
  rule->forward.status = r.status;
  rule->forward.t = r.t;
  r.backward = stats;
  return record(std::move(r), y0, params, rule);
}

// Output times with a gradient strategy: one recorded solve per interval between consecutive
// output times, chained, so each output's cotangent joins the backward pass where it belongs.
template <class Segment>
Result chain_segments(const char* who, const State& y0, double t0, double t1,
                      const Options& forward, Segment&& segment) {
  check_options(who, y0, t0, t1, forward);
  if (forward.event)
    fail<ValueError>(who,
                     ": terminal events are not supported (the event time's derivative is "
                     "not implemented); odeint with grad mode on differentiates with the "
                     "event time held fixed");
  if (!forward.step_grid.empty() && !forward.output_times.empty())
    fail<ValueError>(who, ": give step_grid or output_times, not both");
  if (forward.dense) fail<ValueError>(who, ": dense output is not supported; use output_times");
  Result total;
  total.y = y0;
  total.t = t0;
  double a = t0;
  std::vector<double> ends = forward.output_times;
  ends.push_back(t1);
  for (std::size_t k = 0; k < ends.size(); ++k) {
    const double b = ends[k];
    if (b != a) {
      Result seg = segment(total.y, a, b);
      total.nfe += seg.nfe;
      total.steps += seg.steps;
      total.rejected += seg.rejected;
      total.stiffness_detected |= seg.stiffness_detected;
      total.backward = seg.backward;
      total.y = std::move(seg.y);
      total.t = seg.t;
      total.status = seg.status;
      if (!seg.ok()) return total;
      a = b;
    }
    if (k + 1 < ends.size()) total.ys.push_back(total.y);
  }
  return total;
}
}  // namespace

Result odeint_adjoint(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                      double t0, double t1, const AdjointOptions& o) {
  auto stats = std::make_shared<BackwardStats>();
  Result r = chain_segments("odeint_adjoint", y0, t0, t1, o.forward,
                            [&](const State& y, double a, double b) {
                              return adjoint_segment(f, y, params, a, b, o, stats);
                            });
  r.backward = stats;
  return r;
}

Result odeint_checkpointed(const Dynamics& f, const State& y0, const std::vector<Tensor>& params,
                           double t0, double t1, const Options& o) {
  auto stats = std::make_shared<BackwardStats>();
  Result r =
      chain_segments("odeint_checkpointed", y0, t0, t1, o, [&](const State& y, double a, double b) {
        return checkpointed_segment(f, y, params, a, b, o, stats);
      });
  r.backward = stats;
  return r;
}

}  // namespace sg::ode
