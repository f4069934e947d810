// safetensors reading (with full validation) and atomic writing, and the Checkpoint bundle
// (model, optimizer, EMA, generator, step, config) on top of it. See checkpoint.hpp.
#include "nn/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "autodiff/ops/ops.hpp"
#include "autodiff/tape/autograd.hpp"

static_assert(
    std::endian::native == std::endian::little,
    "safetensors stores little-endian data; scoregrad's reader/writer copies bytes as is");

namespace sg::nn {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100'000'000;  // as the reference implementation
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
  }
  return "?";
}
std::optional<DType> parse_dtype(const std::string& s) {
  if (s == "F32") return DType::f32;
  if (s == "F64") return DType::f64;
  if (s == "I64") return DType::i64;
  if (s == "BOOL") return DType::b8;
  return std::nullopt;
}

std::string sys_error() { return std::strerror(errno); }

// ---- writing -----------------------------------------------------------------------------------

// The temporary file, written with plain write(2) so that it can be fsync'ed.
class TempFile {
 public:
  TempFile(const std::string& target, const std::string& who) : target_(target), who_(who) {
    static std::atomic<uint64_t> counter{0};
    const std::filesystem::path t(target);
    const std::filesystem::path dir =
        t.parent_path().empty() ? std::filesystem::path(".") : t.parent_path();
    dir_ = dir.string();
    const std::string name = cat(".", t.filename().string(), ".tmp-", ::getpid(), "-",
                                 counter.fetch_add(1));  // ".<name>.tmp-<pid>-<n>"
    path_ = (dir / name).string();
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0)
      fail<IOError>(who_, " ", target_, ": cannot create temporary file ", path_, ": ",
                    sys_error());
    crash_after_ = t_crash_after;
    t_crash_after.reset();
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !crashed_) ::unlink(path_.c_str());
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
  // flush + fsync, rename over the target, fsync the directory.
  void commit() {
    if (::fsync(fd_) != 0)
      fail<IOError>(who_, " ", target_, ": fsync of ", path_, " failed: ", sys_error());
    if (::close(fd_) != 0) {
      fd_ = -1;
      fail<IOError>(who_, " ", target_, ": closing ", path_, " failed: ", sys_error());
    }
    fd_ = -1;
    if (::rename(path_.c_str(), target_.c_str()) != 0)
      fail<IOError>(who_, " ", target_, ": cannot rename ", path_, " over it: ", sys_error());
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

std::string read_file(const std::string& path, const std::string& who) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail<IOError>(who, " ", path, ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IOError>(who, " ", path, ": cannot open: ", sys_error());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail<IOError>(who, " ", path, ": read error: ", sys_error());
  return bytes;
}

SafetensorsFile parse_safetensors(const std::string& path, const std::string& bytes,
                                  const std::string& who) {
  auto bad = [&](const auto&... a) { fail<IOError>(who, " ", path, ": ", a...); };
  if (bytes.size() < 8)
    bad("file is ", bytes.size(),
        " bytes, too short for the 8-byte header length (truncated or not safetensors)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  const uint64_t rest = bytes.size() - 8;
  if (n > rest)
    bad("header length ", n, " is larger than the ", rest,
        " bytes after it (truncated or not safetensors)");
  if (n > kMaxHeader) bad("header length ", n, " exceeds the limit of ", kMaxHeader, " bytes");
  const char* hb = bytes.data() + 8;

  std::set<std::string> keys;
  std::string duplicate;
  auto dup_check = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(hb, hb + n, dup_check);
  } catch (const json::exception& e) {
    bad("header is not valid JSON: ", e.what());
  }
  if (!header.is_object()) bad("header is JSON but not an object (it is ", header.type_name(), ")");
  if (!duplicate.empty()) bad("header names '", duplicate, "' twice");

  const uint64_t data_size = rest - n;
  const char* data = hb + n;
  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ must be an object of strings, got ", v.type_name());
      for (auto& [k, s] : v.items()) {
        if (!s.is_string())
          bad("__metadata__ entry '", k, "' must be a string, got ", s.type_name());
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object()) bad(where, "entry must be an object, got ", v.type_name());
    for (auto& [k, x] : v.items())
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        bad(where, "unexpected field '", k, "'");
    if (!v.contains("dtype") || !v["dtype"].is_string())
      bad(where, "missing or non-string \"dtype\"");
    const std::string dt = v["dtype"].get<std::string>();
    const auto dtype = parse_dtype(dt);
    if (!dtype) bad(where, "unsupported dtype '", dt, "' (scoregrad reads F32, F64, I64, BOOL)");
    if (!v.contains("shape") || !v["shape"].is_array())
      bad(where, "missing or non-array \"shape\"");
    const json& js = v["shape"];
    if (js.size() > static_cast<std::size_t>(kMaxDims))
      bad(where, "shape has ", js.size(), " dimensions (at most ", kMaxDims, ")");
    Shape shape;
    bool zero = false;
    for (const json& d : js) {
      if (!d.is_number_unsigned() ||
          d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(where, "shape ", js.dump(), " must hold non-negative integers");
      shape.push_back(d.get<int64_t>());
      zero |= d.get<int64_t>() == 0;
    }
    uint64_t nbytes = 0;
    if (!zero) {
      uint64_t numel = 1;
      for (int64_t d : shape)
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel))
          bad(where, "shape ", js.dump(), " is too large");
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(itemsize(*dtype)), &nbytes) ||
          numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(where, "shape ", js.dump(), " is too large");
    }
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2 || !v["data_offsets"][0].is_number_unsigned() ||
        !v["data_offsets"][1].is_number_unsigned())
      bad(where, "\"data_offsets\" must be [begin, end] with non-negative integers, got ",
          v.contains("data_offsets") ? v["data_offsets"].dump() : std::string("nothing"));
    const uint64_t b = v["data_offsets"][0].get<uint64_t>(),
                   e = v["data_offsets"][1].get<uint64_t>();
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
      bad("tensor '", e->name, "' data_offsets [", e->begin, ", ", e->end, "] overlap tensor '",
          prev->name, "' [", prev->begin, ", ", prev->end, "]");
    if (e->begin > pos)
      bad("bytes [", pos, ", ", e->begin, ") of the data buffer belong to no tensor (before '",
          e->name, "')");
    pos = e->end;
    prev = e;
  }
  if (pos != data_size)
    bad(data_size - pos, " trailing bytes after the last tensor's data (the buffer has ", data_size,
        " bytes, tensors cover ", pos, ")");

  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, e.dtype);
    const std::size_t nb = static_cast<std::size_t>(e.end - e.begin);
    if (nb) std::memcpy(t.raw_data(), data + e.begin, nb);
    if (e.dtype == DType::b8)
      for (std::size_t i = 0; i < nb; ++i) {
        const auto c = static_cast<unsigned char>(data[e.begin + i]);
        if (c > 1)
          bad("tensor '", e.name, "': BOOL element ", i, " has byte value ", static_cast<int>(c),
              " (must be 0 or 1)");
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
    fail<IOError>("load_checkpoint ", path, ": metadata '", key, "' = \"", s,
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

SafetensorsFile load_safetensors(const std::string& path) {
  return parse_safetensors(path, read_file(path, "load_safetensors"), "load_safetensors");
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
    if (!json::accept(ck.config))
      fail<ValueError>("save_checkpoint ", path, ": config is not valid JSON: ", ck.config);
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
  const SafetensorsFile f =
      parse_safetensors(path, read_file(path, "load_checkpoint"), "load_checkpoint");
  const Metadata& md = f.metadata;
  auto fmt = md.find("format");
  if (fmt == md.end() || fmt->second != kFormat)
    fail<IOError>("load_checkpoint ", path, ": not a scoregrad checkpoint (metadata format is ",
                  fmt == md.end() ? std::string("missing") : "\"" + fmt->second + "\"",
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
      fail<IOError>("load_checkpoint ", path, ": unexpected tensor '", k,
                    "' (not under model., optim., ema. or extra.)");
  }
  const std::string have = md.at("sections").empty() ? "none" : md.at("sections");
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
        fail<ValueError>("the file holds ", it->second, " state, the optimizer is ",
                         ck.optimizer->name());
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
