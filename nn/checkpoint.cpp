// safetensors reading (with full validation) and atomic writing, and the Checkpoint bundle
// (model, optimizer, EMA, generator, step, config) on top of it. See checkpoint.hpp.
#include "nn/checkpoint.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"
#include "nn/strict_json.hpp"

static_assert(
    std::endian::native == std::endian::little,
    "safetensors stores little-endian data; scoregrad's reader/writer copies bytes as is");

namespace sg::nn {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100'000'000;  // as the reference implementation
// A valid header nests 3 levels (header, entry, shape); a little more gives readable errors.
constexpr int kMaxHeaderDepth = 8;
constexpr std::size_t kQuote = 120;  // longest excerpt of a name or value in an error message
constexpr const char* kFormat = "scoregrad.checkpoint/1";

thread_local std::optional<std::size_t> t_crash_after;

const char* st_dtype(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i64:
      return "I64";
    case DType::b8:
      return "BOOL";
    case DType::bf16:
      return "BF16";
    case DType::f16:
      return "F16";
  }
  return "?";
}
std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "F32") return DType::f32;
  if (s == "F64") return DType::f64;
  if (s == "I64") return DType::i64;
  if (s == "BOOL") return DType::b8;
  if (s == "BF16") return DType::bf16;
  if (s == "F16") return DType::f16;
  return std::nullopt;
}

std::string sys_error() { return std::strerror(errno); }

// ---- temporary files ---------------------------------------------------------------------------
// A save writes ".<name>.tmp-<pid>-<n>" next to the target and holds an exclusive flock(2) on it
// until it has been renamed over the target. The kernel drops the lock when the writer dies, so
// a temporary file of this pattern that nobody holds a lock on was left by an interrupted save:
// the next save or load next to the same target removes it (pid reuse cannot fool this, unlike
// a pid check). Temporary files of this process are also kept in a set, for filesystems whose
// flock does not exclude other descriptors of the same process.

std::mutex g_live_mutex;
std::set<std::string> g_live_temps;

std::string dir_of(const std::filesystem::path& target) {
  return target.parent_path().empty() ? std::string(".") : target.parent_path().string();
}

bool is_temp_name(std::string_view name, std::string_view filename) {
  const std::string prefix = cat(".", filename, ".tmp-");
  if (!name.starts_with(prefix)) return false;
  name.remove_prefix(prefix.size());
  const auto dash = name.find('-');
  auto digits = [](std::string_view d) {
    return !d.empty() && d.find_first_not_of("0123456789") == std::string_view::npos;
  };
  return dash != std::string_view::npos && digits(name.substr(0, dash)) &&
         digits(name.substr(dash + 1));
}

// Removes the stale temporary files of `target` (best effort: errors are ignored).
void remove_stale_temps(const std::string& target) {
  const std::filesystem::path t(target);
  const std::string dir = dir_of(t), filename = t.filename().string();
  if (filename.empty()) return;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (const dirent* e = ::readdir(d)) {
    if (!is_temp_name(e->d_name, filename)) continue;
    const std::string path = (std::filesystem::path(dir) / e->d_name).string();
    {
      std::lock_guard<std::mutex> lock(g_live_mutex);
      if (g_live_temps.count(path)) continue;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat held {
    }, now{};
    // Locked: a writer is alive. Not the same file any more: it went away meanwhile.
    if (::fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::lstat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev)
      (void)::unlink(path.c_str());
    ::close(fd);
  }
  ::closedir(d);
}

// The temporary file, written with plain write(2) so that it can be fsync'ed.
class TempFile {
 public:
  TempFile(const std::string& target, const std::string& who) : target_(target), who_(who) {
    static std::atomic<uint64_t> counter{0};
    remove_stale_temps(target);
    const std::filesystem::path t(target);
    dir_ = dir_of(t);
    for (int attempt = 0;; ++attempt) {
      const std::string name = cat(".", t.filename().string(), ".tmp-", ::getpid(), "-",
                                   counter.fetch_add(1));  // ".<name>.tmp-<pid>-<n>"
      path_ = (std::filesystem::path(dir_) / name).string();
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && errno == EEXIST && attempt < 100) continue;  // left by an earlier pid
      if (fd_ < 0)
        fail<IOError>(who_, " ", target_, ": cannot create temporary file ", path_, ": ",
                      sys_error());
      // Without flock support the file is never taken for stale: the cleaner needs the lock.
      (void)::flock(fd_, LOCK_EX);
      // A cleaner that took the file for stale between open and flock has unlinked it.
      struct stat mine {
      }, named{};
      if (::fstat(fd_, &mine) == 0 && ::lstat(path_.c_str(), &named) == 0 &&
          mine.st_ino == named.st_ino && mine.st_dev == named.st_dev)
        break;
      ::close(fd_);
      fd_ = -1;
      if (attempt >= 100)
        fail<IOError>(who_, " ", target_, ": temporary file ", path_, " keeps disappearing");
    }
    {
      std::lock_guard<std::mutex> lock(g_live_mutex);
      g_live_temps.insert(path_);
    }
    crash_after_ = t_crash_after;
    t_crash_after.reset();
  }
  ~TempFile() {
    if (!committed_ && !crashed_) ::unlink(path_.c_str());
    if (fd_ >= 0) ::close(fd_);  // releases the lock: a crashed file is now stale
    std::lock_guard<std::mutex> lock(g_live_mutex);
    g_live_temps.erase(path_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    if (crash_after_ && written_ + n > *crash_after_) {
      raw_write(p, *crash_after_ - written_);
      crashed_ = true;  // leave the partial temporary file behind, like a killed process
      fail<testing::SimulatedCrash>(who_, " ", target_, ": simulated crash after ", *crash_after_,
                                    " bytes of the temporary file ", path_);
    }
    raw_write(p, n);
  }
  // fsync, rename over the target (still holding the lock, so that no cleaner can take the
  // file for stale), close, fsync the directory.
  void commit() {
    if (::fsync(fd_) != 0)
      fail<IOError>(who_, " ", target_, ": fsync of ", path_, " failed: ", sys_error());
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      fail<IOError>(who_, " ", target_, ": cannot rename ", path_, " over it: ", sys_error());
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      committed_ = true;
      fail<IOError>(who_, " ", target_, ": closing ", path_, " failed: ", sys_error());
    }
    committed_ = true;
    // Make the rename itself durable (best effort: some filesystems refuse fsync on directories).
    const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  void raw_write(const char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail<IOError>(who_, " ", target_, ": writing ", path_, " failed: ", sys_error());
      }
      p += w, n -= static_cast<std::size_t>(w), written_ += static_cast<std::size_t>(w);
    }
  }
  std::string target_, who_, dir_, path_;
  int fd_ = -1;
  std::size_t written_ = 0;
  std::optional<std::size_t> crash_after_;
  bool committed_ = false, crashed_ = false;
};

// ---- writing -----------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const Metadata& metadata, const std::string& who) {
  // Contiguous CPU copies, and the header describing them in name order.
  std::vector<Tensor> data;
  json header = json::object();
  uint64_t offset = 0;
  {
    NoGradGuard off;
    for (const auto& [name, t] : tensors) {
      if (name == "__metadata__")
        fail<ValueError>(who, " ", path, ": the tensor name \"__metadata__\" is reserved");
      if (!t.defined()) fail<ValueError>(who, " ", path, ": tensor '", name, "' is undefined");
      Tensor c = contiguous(to_device(t.detach(), Device::cpu())).detach();
      const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * itemsize(c.dtype());
      json shape = json::array();
      for (int64_t d : c.shape()) shape.push_back(d);
      header[name] = {{"dtype", st_dtype(c.dtype())},
                      {"shape", shape},
                      {"data_offsets", {offset, offset + nbytes}}};
      offset += nbytes;
      data.push_back(std::move(c));
    }
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail<ValueError>(who, " ", path, ": a tensor name or metadata string is not valid UTF-8 (",
                     e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // pad so that the data starts 8-byte aligned
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));

  TempFile f(path, who);
  f.write(len, 8);
  f.write(text.data(), text.size());
  for (const Tensor& c : data)
    if (c.numel()) f.write(c.raw_data(), static_cast<std::size_t>(c.numel()) * itemsize(c.dtype()));
  f.commit();
}

// ---- reading -----------------------------------------------------------------------------------

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// A file opened for reading: a regular file (a FIFO, device or directory is refused before
// anything is read from it), read piece by piece with pread(2).
class InFile {
 public:
  InFile(const std::string& path, const std::string& who) : path_(path), who_(who) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    fd_.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_.fd < 0) fail<IOError>(who, " ", path, ": cannot open: ", sys_error());
    struct stat st {};
    if (::fstat(fd_.fd, &st) != 0) fail<IOError>(who, " ", path, ": cannot stat: ", sys_error());
    if (S_ISDIR(st.st_mode)) fail<IOError>(who, " ", path, ": is a directory");
    if (!S_ISREG(st.st_mode))
      fail<IOError>(who, " ", path, ": is not a regular file (",
                    S_ISFIFO(st.st_mode)   ? "a FIFO"
                    : S_ISCHR(st.st_mode)  ? "a character device"
                    : S_ISBLK(st.st_mode)  ? "a block device"
                    : S_ISSOCK(st.st_mode) ? "a socket"
                                           : "not a plain file",
                    ")");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  uint64_t size() const { return size_; }
  // Exactly n bytes at `offset` (within size(): the caller checks), or an IOError.
  void read_at(uint64_t offset, void* dst, uint64_t n) const {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      const std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(n, 1u << 30));
      const ssize_t r = ::pread(fd_.fd, p, chunk, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail<IOError>(who_, " ", path_, ": read error: ", sys_error());
      if (r == 0)
        fail<IOError>(who_, " ", path_, ": the file shrank while it was read (", n,
                      " bytes missing at offset ", offset, ")");
      p += r, offset += static_cast<uint64_t>(r), n -= static_cast<uint64_t>(r);
    }
  }

 private:
  struct Fd {
    int fd = -1;
    ~Fd() {
      if (fd >= 0) ::close(fd);
    }
  };
  std::string path_, who_;
  Fd fd_;
  uint64_t size_ = 0;
};

// The length check, then the header, then each tensor's bytes once the header is validated:
// nothing is read or allocated beyond what the file's own size justifies.
SafetensorsFile parse_safetensors(const std::string& path, const std::string& who) {
  remove_stale_temps(path);
  const InFile file(path, who);
  auto bad = [&](const auto&... a) { fail<IOError>(who, " ", path, ": ", a...); };
  if (file.size() < 8)
    bad("file is ", file.size(),
        " bytes, too short for the 8-byte header length (truncated or not safetensors)");
  unsigned char len[8];
  file.read_at(0, len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  const uint64_t rest = file.size() - 8;
  if (n > rest)
    bad("header length ", n, " is larger than the ", rest,
        " bytes after it (truncated or not safetensors)");
  if (n > kMaxHeader) bad("header length ", n, " exceeds the limit of ", kMaxHeader, " bytes");
  std::string text(static_cast<std::size_t>(n), '\0');
  file.read_at(8, text.data(), n);

  json header;
  try {
    header = parse_json_strict(text, kMaxHeaderDepth);
  } catch (const JsonError& e) {
    if (e.duplicate.size() == 1)
      bad("header names '", text_excerpt(e.duplicate[0], kQuote), "' twice");
    if (!e.duplicate.empty()) bad("header: ", e.what());
    bad("header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) bad("header is JSON but not an object (it is ", header.type_name(), ")");

  const uint64_t data_size = rest - n, data_start = 8 + n;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ must be an object of strings, got ", v.type_name());
      for (auto& [k, s] : v.items()) {
        if (!s.is_string())
          bad("__metadata__ entry '", text_excerpt(k, kQuote), "' must be a string, got ",
              s.type_name());
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + text_excerpt(name, kQuote) + "': ";
    if (!v.is_object()) bad(where, "entry must be an object, got ", v.type_name());
    for (auto& [k, x] : v.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        bad(where, "unexpected field '", text_excerpt(k, kQuote), "'");
    if (!v.contains("dtype") || !v["dtype"].is_string())
      bad(where, "missing or non-string \"dtype\"");
    const std::string dt = v["dtype"].get<std::string>();
    const auto dtype = parse_dtype(dt);
    if (!dtype)
      bad(where, "unsupported dtype '", text_excerpt(dt, kQuote),
          "' (scoregrad reads F32, F64, BF16, F16, I64, BOOL)");
    if (!v.contains("shape") || !v["shape"].is_array())
      bad(where, "missing or non-array \"shape\"");
    const json& js = v["shape"];
    if (js.size() > static_cast<std::size_t>(kMaxDims))
      bad(where, "shape has ", js.size(), " dimensions (at most ", kMaxDims, ")");
    // Every extent an int64 >= 0, and the element and byte counts with every zero extent taken
    // as 1 must fit int64: a zero extent must not hide [2^62, 2^62, 0] (strides and any later
    // product of extents would overflow).
    Shape shape;
    uint64_t numel = 1, span = 1, nbytes = 0;
    constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (const json& d : js) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > kMax)
        bad(where, "shape ", json_excerpt(js, kQuote), " must hold non-negative integers");
      const uint64_t x = d.get<uint64_t>();
      shape.push_back(static_cast<int64_t>(x));
      numel *= x;  // cannot overflow once span (>= numel) has been checked below
      if (__builtin_mul_overflow(span, std::max<uint64_t>(x, 1), &span) || span > kMax)
        bad(where, "shape ", json_excerpt(js, kQuote), " is too large");
    }
    uint64_t span_bytes = 0;
    if (__builtin_mul_overflow(span, static_cast<uint64_t>(itemsize(*dtype)), &span_bytes) ||
        span_bytes > kMax)
      bad(where, "shape ", json_excerpt(js, kQuote), " is too large");
    nbytes = numel * static_cast<uint64_t>(itemsize(*dtype));
    const json* offsets = v.contains("data_offsets") ? &v["data_offsets"] : nullptr;
    if (!offsets || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      bad(where, "\"data_offsets\" must be [begin, end] with non-negative integers, got ",
          offsets ? json_excerpt(*offsets, kQuote) : std::string("nothing"));
    const uint64_t b = (*offsets)[0].get<uint64_t>(), e = (*offsets)[1].get<uint64_t>();
    if (b > e) bad(where, "data_offsets [", b, ", ", e, "] has begin after end");
    if (e > data_size)
      bad(where, "data_offsets [", b, ", ", e, "] run past the ", data_size,
          "-byte data buffer (truncated file?)");
    if (e - b != nbytes)
      bad(where, "data_offsets [", b, ", ", e, "] hold ", e - b, " bytes but ", dt, " ",
          shape.str(), " needs ", nbytes);
    entries.push_back({name, *dtype, shape, b, e});
  }

  // The tensors must tile the buffer exactly.
  std::vector<const Entry*> order;
  for (const Entry& e : entries) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry* e : order) {
    if (e->begin < pos)
      bad("tensor '", text_excerpt(e->name, kQuote), "' data_offsets [", e->begin, ", ", e->end,
          "] overlap tensor '", text_excerpt(prev->name, kQuote), "' [", prev->begin, ", ",
          prev->end, "]");
    if (e->begin > pos)
      bad("bytes [", pos, ", ", e->begin, ") of the data buffer belong to no tensor (before '",
          text_excerpt(e->name, kQuote), "')");
    pos = e->end;
    prev = e;
  }
  if (pos != data_size)
    bad(data_size - pos, " trailing bytes after the last tensor's data (the buffer has ", data_size,
        " bytes, tensors cover ", pos, ")");

  // Only now is data read: each tensor's bytes straight into its storage.
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    const uint64_t nb = e.end - e.begin;
    if (nb) file.read_at(data_start + e.begin, t.raw_data(), nb);
    if (e.dtype == DType::b8) {
      const auto* bytes = static_cast<const unsigned char*>(t.raw_data());
      for (uint64_t i = 0; i < nb; ++i)
        if (bytes[i] > 1)
          bad("tensor '", text_excerpt(e.name, kQuote), "': BOOL element ", i, " has byte value ",
              static_cast<int>(bytes[i]), " (must be 0 or 1)");
    }
    out.tensors[e.name] = std::move(t);
  }
  return out;
}

// ---- checkpoint metadata helpers ---------------------------------------------------------------

template <class T>
T parse_int(const Metadata& md, const std::string& key, const std::string& path) {
  auto it = md.find(key);
  if (it == md.end()) fail<IOError>("load_checkpoint ", path, ": metadata has no '", key, "'");
  T v{};
  const std::string& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    fail<IOError>("load_checkpoint ", path, ": metadata '", key, "' = \"", text_excerpt(s, kQuote),
                  "\" is not a valid integer");
  return v;
}

}  // namespace

// ---- public API --------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const Metadata& metadata) {
  write_safetensors(path, tensors, metadata, "save_safetensors");
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  TempFile f(path, "write_file_atomic");
  f.write(bytes.data(), bytes.size());
  f.commit();
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& who) {
  const InFile file(path, who);
  if (file.size() > max_bytes)
    fail<IOError>(who, " ", path, ": is ", file.size(), " bytes, more than the limit of ",
                  max_bytes);
  std::string bytes(static_cast<std::size_t>(file.size()), '\0');
  file.read_at(0, bytes.data(), file.size());
  return bytes;
}

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(path, "load_safetensors");
}

void save_checkpoint(const std::string& path, const Checkpoint& ck) {
  NamedTensors tensors;
  Metadata md{{"format", kFormat}, {"step", std::to_string(ck.step)}};
  std::string sections;
  auto add_section = [&](const char* s) {
    if (!sections.empty()) sections += ',';
    sections += s;
  };
  if (!ck.config.empty()) {
    try {
      (void)parse_json_strict(ck.config);
    } catch (const JsonError& e) {
      fail<ValueError>("save_checkpoint ", path, ": config is not strict JSON (", e.what(),
                       "): ", text_excerpt(ck.config, kQuote));
    }
    md["config"] = ck.config;
  }
  if (ck.model) {
    add_section("model");
    for (auto& [k, v] : ck.model->state_dict()) tensors["model." + k] = v;
  }
  if (ck.optimizer) {
    add_section("optimizer");
    for (auto& [k, v] : ck.optimizer->state()) tensors[k] = v;
    md["optimizer"] = ck.optimizer->name();
  }
  if (ck.ema) {
    add_section("ema");
    for (auto& [k, v] : ck.ema->state()) tensors[k] = v;
  }
  if (!ck.extra.empty()) {
    add_section("extra");
    for (auto& [k, v] : ck.extra) tensors["extra." + k] = v;
  }
  if (ck.generator) {
    add_section("generator");
    md["rng.seed"] = std::to_string(ck.generator->seed());
    md["rng.offset"] = std::to_string(ck.generator->offset());
  }
  md["sections"] = sections;
  write_safetensors(path, tensors, md, "save_checkpoint");
}

void load_checkpoint(const std::string& path, Checkpoint& ck) {
  const SafetensorsFile f = parse_safetensors(path, "load_checkpoint");
  const Metadata& md = f.metadata;
  auto fmt = md.find("format");
  if (fmt == md.end() || fmt->second != kFormat)
    fail<IOError>(
        "load_checkpoint ", path, ": not a scoregrad checkpoint (metadata format is ",
        fmt == md.end() ? std::string("missing") : "\"" + text_excerpt(fmt->second, kQuote) + "\"",
        ", expected \"", kFormat, "\")");
  const int64_t step = parse_int<int64_t>(md, "step", path);
  std::set<std::string> sections;
  {
    auto it = md.find("sections");
    if (it == md.end()) fail<IOError>("load_checkpoint ", path, ": metadata has no 'sections'");
    std::string s = it->second;
    for (std::size_t start = 0; start < s.size();) {
      const auto comma = s.find(',', start);
      sections.insert(
          s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  NamedTensors model, optim, ema, extra;
  for (const auto& [k, v] : f.tensors) {
    if (k.rfind("model.", 0) == 0)
      model[k.substr(6)] = v;
    else if (k.rfind("extra.", 0) == 0)
      extra[k.substr(6)] = v;
    else if (k.rfind("optim.", 0) == 0)
      optim[k] = v;
    else if (k.rfind("ema.", 0) == 0)
      ema[k] = v;
    else
      fail<IOError>("load_checkpoint ", path, ": unexpected tensor '", text_excerpt(k, kQuote),
                    "' (not under model., optim., ema. or extra.)");
  }
  const std::string have =
      md.at("sections").empty() ? "none" : text_excerpt(md.at("sections"), kQuote);
  auto need = [&](const void* obj, const char* section) {
    if (obj && !sections.count(section))
      fail<ValueError>("load_checkpoint ", path, ": asked to restore the ", section,
                       " but the file holds no ", section, " state (sections: ", have, ")");
  };
  need(ck.model, "model");
  need(ck.optimizer, "optimizer");
  need(ck.ema, "ema");
  need(ck.generator, "generator");
  uint64_t seed = 0, offset = 0;
  if (ck.generator) {
    seed = parse_int<uint64_t>(md, "rng.seed", path);
    offset = parse_int<uint64_t>(md, "rng.offset", path);
  }
  std::string config;
  if (auto it = md.find("config"); it != md.end()) config = it->second;

  // Check everything, then change the objects (load_state_dict checks before it assigns).
  try {
    if (ck.optimizer) {
      // Adam and AdamW share their state; any other change of optimizer is a mistake.
      auto family = [](const std::string& n) { return n == "AdamW" ? std::string("Adam") : n; };
      auto it = md.find("optimizer");
      if (it != md.end() && family(it->second) != family(ck.optimizer->name()))
        fail<ValueError>("the file holds ", text_excerpt(it->second, kQuote),
                         " state, the optimizer is ", ck.optimizer->name());
      ck.optimizer->check_state(optim);
    }
    if (ck.ema) ck.ema->check_state(ema);
    if (ck.model) ck.model->load_state_dict(model, true);
  } catch (const ValueError& e) {
    fail<ValueError>("load_checkpoint ", path, ": ", e.what());
  }
  if (ck.optimizer) ck.optimizer->load_state(optim);
  if (ck.ema) ck.ema->load_state(ema);
  if (ck.generator) ck.generator->set_state(seed, offset);
  ck.step = step;
  ck.config = config;
  ck.extra = std::move(extra);
}

namespace testing {
void crash_next_save_after(std::size_t bytes) { t_crash_after = bytes; }
}  // namespace testing

}  // namespace sg::nn
