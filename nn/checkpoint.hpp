// Checkpoints: the safetensors file format (read, validated; written atomically) and a
// Checkpoint bundle of model, optimizer, EMA and generator state, step and config.
//
//   sg::nn::save_safetensors("w.safetensors", net.state_dict(), {{"note", "epoch 3"}});
//   auto file = sg::nn::load_safetensors("w.safetensors");   // .tensors, .metadata
//
//   sg::nn::Checkpoint ck{.model = &net, .optimizer = &opt, .ema = &ema, .generator = &gen,
//                         .step = step, .config = config_json};
//   sg::nn::save_checkpoint("run/ckpt.safetensors", ck);
//   sg::nn::load_checkpoint("run/ckpt.safetensors", ck);      // restores into the same objects
//
// safetensors layout (https://github.com/huggingface/safetensors):
//   8 bytes        N, the header length, unsigned little-endian
//   N bytes        JSON: {"<name>": {"dtype": "F32"|"F64"|"I64"|"BOOL", "shape": [...],
//                         "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
//                  (padded with spaces to a multiple of 8 bytes when written here)
//   the rest       the byte buffer: each tensor row-major little-endian at [begin, end) relative
//                  to the buffer's start; tensors cover it exactly, without gaps or overlaps.
// Writing goes to a temporary file ".<name>.tmp-<pid>-<n>" in the target's directory, which is
// flushed, fsync'ed and renamed over the target (then the directory is fsync'ed): a crash
// mid-write leaves the previous file intact. The writer holds an flock(2) on its temporary file
// until the rename; the kernel drops it when the process dies, so a temporary file of that
// pattern that nobody holds locked was left by an interrupted save, and the next save or load
// of the same target removes it (best effort; live saves of other processes are never touched).
// Reading treats the file as hostile and throws sg::IOError naming the file and the problem,
// with any quoted name or value cut short: not a regular file (a FIFO or device is refused
// before it is read), too short, header length beyond the file or over 100 MB, bad JSON, JSON
// nested deeper than 8 levels, any key given twice (tensor names or fields), unknown dtype, bad
// shapes (extents must be int64 >= 0 and the element and byte counts must fit int64 even with
// zero extents counted as 1), offsets out of range / overlapping / leaving gaps / not matching
// dtype x shape, trailing bytes, bool bytes other than 0/1. Only the 8-byte length and then the
// header are read before validation; each tensor's bytes are read once everything checks out,
// so memory use is bounded by the file's real size. Parsing is linear in the header size.
//
// A checkpoint is one safetensors file:
//   model.<name>          Module::state_dict() (parameters and buffers)
//   optim.*               Optimizer::state()  (see nn/optim.hpp)
//   ema.*                 Ema::state()
//   extra.<name>          Checkpoint::extra
//   __metadata__          format = "scoregrad.checkpoint/1", step, rng.seed, rng.offset
//                         (decimal), config (a JSON string), and only the sections present.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "autodiff/core/error.hpp"
#include "autodiff/core/rng.hpp"
#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace sg::nn {

using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  NamedTensors tensors;  // contiguous CPU tensors
  Metadata metadata;
};

// Writes `tensors` (any device, any strides: copied to contiguous CPU bytes) and `metadata`.
// ValueError for an undefined tensor or the reserved name "__metadata__"; IOError (naming the
// path and the system error) when the file cannot be written.
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);
// Writes `bytes` to `path` the same atomic way (temporary file, fsync, rename); IOError naming
// the path and the system error.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The whole of `path`, which must be a regular file of at most `max_bytes` bytes (a FIFO,
// device or directory is refused before anything is read); IOError "<who> <path>: <problem>".
std::string read_regular_file(const std::string& path, uint64_t max_bytes,
                              const std::string& who = "read_regular_file");

struct Checkpoint {
  Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  Ema* ema = nullptr;
  Generator* generator = nullptr;
  int64_t step = 0;
  std::string config;  // JSON text (strict: no duplicate keys, nesting <= 64; checked on save)
  // Any other state a run needs to resume (e.g. a data loader's position), saved under
  // "extra.<name>" when non-empty and always restored from the file (replacing the map).
  NamedTensors extra;
};

// Saves the non-null parts of `ck`, its step and its config.
void save_checkpoint(const std::string& path, const Checkpoint& ck);
// Restores every non-null part of `ck` from the file and sets ck.step and ck.config. Asking for
// a part the file does not hold is a ValueError; so is a state that does not fit its object
// (for the model, Module::load_state_dict's list of missing / unexpected / mismatched names,
// shapes and dtypes). All parts are checked before any object changes. A malformed file, or
// tensors outside the model./optim./ema./extra. sections, is an IOError.
void load_checkpoint(const std::string& path, Checkpoint& ck);

namespace testing {
// Thrown by a save interrupted by crash_next_save_after.
struct SimulatedCrash : IOError {
  using IOError::IOError;
};
// Test hook (this thread, next save only): the next save_safetensors / save_checkpoint writes
// `bytes` bytes of its temporary file and throws SimulatedCrash, leaving the temporary file
// behind as a killed process would. The target file is not touched.
void crash_next_save_after(std::size_t bytes);
}  // namespace testing

}  // namespace sg::nn
