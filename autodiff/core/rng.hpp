// Generator: the state of the counter-based Philox stream, just (seed, offset). A draw of n
// values uses counters offset..offset+n-1 and advances the offset by n, so the numbers depend
// only on the state and never on thread count or device; saving the pair resumes exactly.
#pragma once
#include <cstdint>

namespace sg {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed, offset_ = offset; }
  // Reserves n counters and returns the first.
  uint64_t advance(uint64_t n) {
    const uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  // An independent generator (new key derived from this state); advances this one by 1.
  Generator split();

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace sg
