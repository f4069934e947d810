// The README's example, compiled and run by ctest so that the README stays true.
#include <iostream>

#include "autodiff/sg.hpp"
using namespace sg;

int main() {
  Generator gen(0);
  Tensor W = randn({3, 3}, gen, DType::f64).requires_grad_();
  Tensor x = randn({8, 3}, gen, DType::f64);
  auto f = [&](const Tensor& z) { return sum(square(tanh(matmul(z, W)))); };

  Tensor g = grad(f, x);  // df/dx
  Tensor v = randn_like(x, gen);
  Tensor h1 = hvp(f, x, v);                                 // forward-over-reverse
  Tensor h2 = hvp(f, x, v, HvpMode::reverse_over_reverse);  // agrees to ~1e-15
  Tensor div = divergence([&](const Tensor& z) { return tanh(matmul(z, W)); }, x);  // exact, [8]
  Tensor dW = sg::grad(sum(div), {W})[0];  // d/dW of a trace: 2nd order
  std::cout << g << "\n"
            << h1 - h2 << "\n"
            << dW << "\n"
            << gradcheck([&](auto& v) { return f(v[0]); }, {x}, {.order = 3});  // a table
}
