// Generic checks over the op test table: every primitive has a row; every row passes the
// dot-product VJP test and the JVP test against central differences at every order up to
// its stated order (3 for elementwise ops), in float64, over broadcasting shapes.
#include <catch2/catch.hpp>
#include <iomanip>
#include <set>
#include <sstream>
#include <string>

#include "autodiff/backend/functors.hpp"
#include "autodiff/verify/op_cases.hpp"

using namespace sg;

TEST_CASE("every primitive op has a test row", "[optable]") {
  std::set<int> covered;
  for (const auto& c : verify::op_cases()) covered.insert(static_cast<int>(c.op));
  for (int i = 0; i < kOpCount; ++i) {
    INFO("op " << op_def(static_cast<OpId>(i)).name
               << " has no row in autodiff/verify/op_cases.cpp");
    CHECK(covered.count(i) == 1);
  }
}

TEST_CASE("op table rows pass gradient checks of every order", "[optable][gradcheck]") {
  for (const auto& c : verify::op_cases()) {
    if (!c.differentiable || c.special()) continue;
    SECTION(c.name) {
      const GradcheckReport r = verify::check_op_case(c);
      std::ostringstream s;
      s << r;
      INFO(c.name << "\n" << s.str());
      CHECK(r.ok());
      CHECK(r.rows.size() == static_cast<size_t>(c.order * (c.has_jvp ? 2 : 1) * c.shapes.size()));
    }
  }
}

TEST_CASE("op table special points: every partial derivative to third order, both modes",
          "[optable][special]") {
  int rows = 0;
  for (const auto& c : verify::op_cases()) {
    if (!c.special()) continue;
    ++rows;
    SECTION(c.name) {
      const GradcheckReport r = verify::check_op_case(c);
      std::ostringstream s;
      for (const auto& w : r.rows)
        if (!w.pass)
          s << w.check << ": got " << std::setprecision(17) << w.analytic << " want " << w.numeric
            << "\n";
      INFO(c.name << " (" << c.points.size() << " points)\n" << s.str());
      CHECK(r.ok());
      // value, then each order by reverse and by forward mode, at every point
      CHECK(r.rows.size() >= c.points.size() * static_cast<size_t>(2 * c.order + 1));
    }
  }
  CHECK(rows >= 40);
}

TEST_CASE("non-differentiable ops produce untracked outputs", "[optable]") {
  Generator g(1);
  Tensor a = randn({3}, g, DType::f64).requires_grad_();
  CHECK_FALSE(lt(a, zeros_like(a)).requires_grad());
  CHECK_FALSE(cast(a, DType::i64).requires_grad());
  CHECK(cast(a, DType::f32).requires_grad());
}

TEST_CASE("backend elementwise ops are the op list's primitives, by name and position",
          "[optable]") {
  // UnaryOp / BinaryOp are generated from SG_UNARY_OPS / SG_BINARY_OPS (op_list.hpp): each
  // arithmetic backend op records as the primitive of the same name, and every one runs.
  const Tensor x = from_vector({0.5, 2.0}, {2}, DType::f64);
  for (int k = 0; k < static_cast<int>(UnaryOp::count); ++k) {
    const auto op = static_cast<UnaryOp>(k);
    const OpDef& d = op_def(op_id(op));
    INFO(kUnaryNames[k] << " -> " << d.name);
    CHECK(d.id == op_id(op));
    CHECK(d.arity == 1);
    CHECK(std::string(d.name) == (op == UnaryOp::pow_scalar ? "pow" : kUnaryNames[k]));
    CHECK(visit_unary(op, 2.0, [](auto f) { return static_cast<double>(f(0.5)); }) ==
          apply(op_id(op), {x}, Attrs{.scalar = 2.0}).to_vector()[0]);
  }
  for (int k = 0; k < static_cast<int>(BinaryOp::count); ++k) {
    const auto op = static_cast<BinaryOp>(k);
    const OpDef& d = op_def(op_id(op));
    INFO(kBinaryNames[k] << " -> " << d.name);
    CHECK(d.arity == 2);
    CHECK(std::string(d.name) == (is_comparison(op) ? "compare" : kBinaryNames[k]));
  }
  CHECK(op_id(UnaryOp::count) == OpId::add);
  CHECK(static_cast<int>(op_id(BinaryOp::minimum)) + 1 == static_cast<int>(OpId::compare));
}
