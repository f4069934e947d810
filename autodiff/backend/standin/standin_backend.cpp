// The stand-in device (standin:0..3): a testing device, not a feature. It runs the CPU kernels
// on host memory, but it is a distinct device behind the same seam as CUDA: its storages hold
// tagged addresses (bit 62 set, the device index in bits 56-57), which are non-canonical on
// x86-64 and so fault if anything dereferences them as host pointers. Only this backend strips
// the tag, and it refuses views that carry no tag or another stand-in's tag. A code path that
// builds a CPU tensor where it should follow its inputs' device therefore fails with
// DeviceError (mixed devices) instead of silently working, which is what the device tests use.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "autodiff/backend/backend.hpp"
#include "autodiff/core/error.hpp"

namespace sg {
namespace {

constexpr uintptr_t kTagBit = uintptr_t{1} << 62;
constexpr int kIndexShift = 56;
constexpr uintptr_t kTagMask = kTagBit | (uintptr_t{3} << kIndexShift);
constexpr std::size_t kAlign = 64;

class StandinBackend final : public Backend {
 public:
  explicit StandinBackend(int index) : index_(index) {}

  Storage* allocate(std::size_t nbytes) override {
    const std::size_t padded = (nbytes + kAlign - 1) / kAlign * kAlign + kAlign;
    void* mem = std::aligned_alloc(kAlign, padded);
    if (!mem) throw std::bad_alloc();
    auto* s = new Storage();
    s->device = Device::standin(index_);
    s->nbytes = nbytes;
    s->data = tag(mem);
    s->release = [](Storage* st) {
      std::free(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(st->data) & ~kTagMask));
      delete st;
    };
    return s;
  }
  void memcpy_host(void* dst, const void* src, std::size_t nbytes, bool dst_on_host) override {
    if (!nbytes) return;
    if (dst_on_host)
      std::memcpy(dst, untag(src, "memcpy_host"), nbytes);
    else
      std::memcpy(untag(dst, "memcpy_host"), src, nbytes);
  }
  void copy(const KView& src, const KView& dst) override {
    cpu().copy(host(src, "copy"), host(dst, "copy"));
  }
  void fill(const KView& dst, double value) override { cpu().fill(host(dst, "fill"), value); }
  void unary(UnaryOp op, double scalar, const KView& x, const KView& out) override {
    cpu().unary(op, scalar, host(x, "unary"), host(out, "unary"));
  }
  void binary(BinaryOp op, const KView& a, const KView& b, const KView& out) override {
    cpu().binary(op, host(a, "binary"), host(b, "binary"), host(out, "binary"));
  }
  void where(const KView& cond, const KView& a, const KView& b, const KView& out) override {
    cpu().where(host(cond, "where"), host(a, "where"), host(b, "where"), host(out, "where"));
  }
  void reduce(ReduceOp op, const KView& x, const KView& out) override {
    cpu().reduce(op, host(x, "reduce"), host(out, "reduce"));
  }
  void matmul(const KView& a, const KView& b, const KView& out) override {
    cpu().matmul(host(a, "matmul"), host(b, "matmul"), host(out, "matmul"));
  }
  void gather(const KView& x, const KView& idx, int axis, const KView& out) override {
    cpu().gather(host(x, "gather"), host(idx, "gather"), axis, host(out, "gather"));
  }
  void scatter_add(const KView& idx, const KView& src, int axis, const KView& out) override {
    cpu().scatter_add(host(idx, "scatter_add"), host(src, "scatter_add"), axis,
                      host(out, "scatter_add"));
  }
  void conv2d(ConvPass pass, const ConvGeom& g, const KView& a, const KView& b,
              const KView& out) override {
    cpu().conv2d(pass, g, host(a, "conv2d"), host(b, "conv2d"), host(out, "conv2d"));
  }
  void random(RandomKind kind, double p, uint64_t seed, uint64_t offset,
              const KView& out) override {
    cpu().random(kind, p, seed, offset, host(out, "random"));
  }

 private:
  static Backend& cpu() { return cpu_backend(); }
  uintptr_t tag_bits() const { return kTagBit | (static_cast<uintptr_t>(index_) << kIndexShift); }
  void* tag(void* p) const {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) | tag_bits());
  }
  // The host address behind one of this device's pointers; a pointer without this device's
  // tag means an op handed memory of another device to this backend.
  void* untag(const void* p, const char* what) const {
    const auto bits = reinterpret_cast<uintptr_t>(p);
    if ((bits & kTagMask) != tag_bits())
      fail<DeviceError>("standin:", index_, " backend (", what,
                        "): given memory that does not belong to this device");
    return reinterpret_cast<void*>(bits & ~kTagMask);
  }
  KView host(const KView& v, const char* what) const {
    KView h = v;
    h.data = untag(v.data, what);
    return h;
  }

  int index_;
};

}  // namespace

Backend& standin_backend(int index) {
  if (index < 0 || index >= kStandinDevices)
    fail<DeviceError>("device standin:", index, " does not exist (standin:0..", kStandinDevices - 1,
                      " are available)");
  static StandinBackend* backends[kStandinDevices] = {};
  static std::once_flag once;
  std::call_once(once, [] {
    for (int i = 0; i < kStandinDevices; ++i) backends[i] = new StandinBackend(i);
  });
  return *backends[index];
}

}  // namespace sg
