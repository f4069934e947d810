// Test helper: the message of the exception of type E that f throws (a test failure if none).
#pragma once
#include <catch2/catch.hpp>
#include <string>

namespace sg::test {
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no error thrown");
  return {};
}
}  // namespace sg::test
