// .npy and .npz reading (see npy.hpp): header literal parsing, element conversion with either
// byte order, C order from Fortran order, and a bounds-checked zip reader (stored and deflated
// members, CRC-32 checked, zip64 size fields in small archives).
#include "nn/npy.hpp"

#include <zlib.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace sg::nn {
namespace {

// Text from a file, fit for a one-line message: at most `max` characters, others as '?'.
std::string printable(std::string_view text, size_t max = 80) {
  std::string out(text.substr(0, max));
  for (char& c : out)
    if (c < 32 || c > 126) c = '?';
  return text.size() > max ? out + "..." : out;
}

uint64_t read_le(std::string_view b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(i)]);
  return v;
}

// The header literal: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
struct HeaderParser {
  std::string_view s;
  const std::string& name;
  size_t i = 0;

  // The header quoted in messages: at most 120 characters, non-printable bytes as '?'.
  [[noreturn]] void bad(const std::string& what) const {
    fail<IOError>("load_npy: ", name, ": malformed header (", what, ") in \"", printable(s, 120),
                  "\"");
  }
  void skip() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t')) ++i;
  }
  bool eat(char c) {
    skip();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  std::string quoted() {
    skip();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) bad("expected a quoted string");
    const char q = s[i++];
    const size_t end = s.find(q, i);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string out(s.substr(i, end - i));
    i = end + 1;
    return out;
  }
  bool boolean() {
    skip();
    if (s.substr(i, 4) == "True") {
      i += 4;
      return true;
    }
    if (s.substr(i, 5) == "False") {
      i += 5;
      return false;
    }
    bad("expected True or False");
  }
  std::vector<int64_t> tuple() {
    if (!eat('(')) bad("expected a shape tuple");
    std::vector<int64_t> out;
    while (!eat(')')) {
      skip();
      int64_t v = 0;
      size_t digits = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("extent too large");
        v = v * 10 + (s[i++] - '0');
        ++digits;
      }
      if (!digits) bad("expected a non-negative extent");
      out.push_back(v);
      if (out.size() > 32) bad("more than 32 axes");
      if (!eat(',')) {
        if (!eat(')')) bad("expected ',' or ')' in the shape");
        break;
      }
    }
    return out;
  }
};

struct Header {
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
};

Header parse_header(std::string_view text, const std::string& name) {
  HeaderParser p{text, name};
  Header h;
  bool seen[3] = {false, false, false};
  if (!p.eat('{')) p.bad("expected '{'");
  while (!p.eat('}')) {
    const std::string key = p.quoted();
    if (!p.eat(':')) p.bad("expected ':' after '" + printable(key) + "'");
    if (key == "descr") {
      p.skip();
      if (p.i < text.size() && text[p.i] == '[')
        fail<IOError>("load_npy: ", name, ": structured arrays are not supported");
      h.descr = p.quoted();
      seen[0] = true;
    } else if (key == "fortran_order") {
      h.fortran = p.boolean();
      seen[1] = true;
    } else if (key == "shape") {
      h.shape = p.tuple();
      seen[2] = true;
    } else {
      p.bad("unknown key '" + printable(key) + "'");
    }
    if (!p.eat(',')) {
      if (!p.eat('}')) p.bad("expected ',' or '}'");
      break;
    }
  }
  if (!seen[0] || !seen[1] || !seen[2]) p.bad("descr, fortran_order and shape are all required");
  return h;
}

// One element of `descr` at p as double.
struct ElementType {
  char kind;  // 'b', 'i', 'u', 'f'
  int size;
  bool swap;  // stored big-endian
};
ElementType element_type(const std::string& descr, const std::string& name) {
  if (descr.size() < 3)
    fail<IOError>("load_npy: ", name, ": unsupported element type '", printable(descr), "'");
  const char order = descr[0], kind = descr[1];
  int size = 0;
  for (size_t k = 2; k < descr.size(); ++k) {
    if (descr[k] < '0' || descr[k] > '9' || size > 100)
      fail<IOError>("load_npy: ", name, ": unsupported element type '", printable(descr), "'");
    size = size * 10 + (descr[k] - '0');
  }
  const bool ok_kind =
      (kind == 'b' && size == 1) ||
      ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
      (kind == 'f' && (size == 4 || size == 8));
  const bool ok_order = order == '<' || order == '>' || order == '|' || order == '=';
  if (!ok_kind || !ok_order)
    fail<IOError>("load_npy: ", name, ": unsupported element type '", printable(descr),
                  "' (bool, int8..int64, uint8..uint64, float32 and float64 are read)");
  return {kind, size, order == '>' && size > 1};
}

double element(const char* p, const ElementType& t) {
  unsigned char b[8];
  std::memcpy(b, p, static_cast<size_t>(t.size));
  if (t.swap)
    for (int k = 0; k < t.size / 2; ++k) std::swap(b[k], b[t.size - 1 - k]);
  uint64_t u = 0;
  for (int k = t.size - 1; k >= 0; --k) u = (u << 8) | b[k];
  switch (t.kind) {
    case 'b':
      return u != 0 ? 1.0 : 0.0;
    case 'u':
      return static_cast<double>(u);
    case 'i': {
      const int shift = 64 - 8 * t.size;  // sign-extend
      return static_cast<double>(static_cast<int64_t>(u << shift) >> shift);
    }
    default:
      if (t.size == 4) return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(u)));
      return std::bit_cast<double>(u);
  }
}

}  // namespace

std::string read_file_bytes(const std::string& path, const char* who) {
  errno = 0;
  std::ifstream f(path, std::ios::binary);
  if (!f) fail<IOError>(who, ": cannot open ", path, ": ", errno ? std::strerror(errno) : "?");
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) fail<IOError>(who, ": read failed: ", path);
  return s.str();
}

NpyArray parse_npy(std::string_view bytes, const std::string& name) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(kMagic, 6))
    fail<IOError>("load_npy: ", name, ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3)
    fail<IOError>("load_npy: ", name, ": unsupported .npy version ", major);
  const size_t len_bytes = major == 1 ? 2 : 4, start = 8 + len_bytes;
  if (bytes.size() < start) fail<IOError>("load_npy: ", name, ": truncated header");
  const uint64_t header_len = read_le(bytes, 8, static_cast<int>(len_bytes));
  if (header_len > bytes.size() - start)
    fail<IOError>("load_npy: ", name, ": header of ", header_len, " bytes runs past the end");
  const Header h = parse_header(bytes.substr(start, header_len), name);
  const ElementType t = element_type(h.descr, name);
  uint64_t n = 1;
  for (int64_t e : h.shape) {
    if (e != 0 && n > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(e))
      fail<IOError>("load_npy: ", name, ": shape too large");
    n *= static_cast<uint64_t>(e);
  }
  const size_t data_at = start + header_len;
  const uint64_t need = n * static_cast<uint64_t>(t.size);
  if (bytes.size() - data_at != need)
    fail<IOError>("load_npy: ", name, ": ", bytes.size() - data_at, " data bytes, the header (",
                  h.descr, ", ", n, " elements) needs ", need);
  NpyArray a;
  a.shape = h.shape;
  a.descr = h.descr;
  a.values.resize(n);
  const char* p = bytes.data() + data_at;
  if (!h.fortran || h.shape.size() < 2) {
    for (uint64_t k = 0; k < n; ++k) a.values[k] = element(p + k * t.size, t);
  } else {
    // Fortran order: the first axis varies fastest in the file.
    const size_t r = h.shape.size();
    std::vector<uint64_t> c_stride(r, 1);
    for (size_t d = r - 1; d > 0; --d)
      c_stride[d - 1] = c_stride[d] * static_cast<uint64_t>(h.shape[d]);
    std::vector<int64_t> idx(r, 0);
    for (uint64_t k = 0; k < n; ++k) {
      uint64_t c = 0;
      for (size_t d = 0; d < r; ++d) c += static_cast<uint64_t>(idx[d]) * c_stride[d];
      a.values[c] = element(p + k * t.size, t);
      for (size_t d = 0; d < r && ++idx[d] == h.shape[d]; ++d) idx[d] = 0;
    }
  }
  return a;
}

NpyArray load_npy(const std::string& path) {
  return parse_npy(read_file_bytes(path, "load_npy"), path);
}

std::map<std::string, NpyArray> load_npz(const std::string& path) {
  return parse_npz(read_file_bytes(path, "load_npz"), path);
}

std::map<std::string, NpyArray> parse_npz(std::string_view z, const std::string& path) {
  auto bad = [&](const std::string& what) -> void {
    fail<IOError>("load_npz: ", path, ": ", what);
  };
  // End of central directory: 22 bytes plus a comment of up to 65535 bytes, from the end.
  size_t eocd = std::string_view::npos;
  for (size_t back = 22; back <= std::min<size_t>(z.size(), 22 + 65535); ++back)
    if (read_le(z, z.size() - back, 4) == 0x06054b50) {
      eocd = z.size() - back;
      break;
    }
  if (eocd == std::string_view::npos) bad("not a zip archive (no end of central directory)");
  const uint64_t entries = read_le(z, eocd + 10, 2);
  const uint64_t dir_size = read_le(z, eocd + 12, 4), dir_at = read_le(z, eocd + 16, 4);
  if (entries == 0xffff || dir_at == 0xffffffff) bad("zip64 archives are not supported");
  if (dir_at > eocd || dir_size > eocd - dir_at) bad("central directory out of bounds");
  std::map<std::string, NpyArray> out;
  size_t at = dir_at;
  for (uint64_t e = 0; e < entries; ++e) {
    if (at + 46 > eocd || read_le(z, at, 4) != 0x02014b50) bad("corrupt central directory");
    const uint64_t method = read_le(z, at + 10, 2), crc = read_le(z, at + 16, 4);
    uint64_t csize = read_le(z, at + 20, 4), usize = read_le(z, at + 24, 4);
    const uint64_t name_len = read_le(z, at + 28, 2), extra_len = read_le(z, at + 30, 2),
                   comment_len = read_le(z, at + 32, 2);
    uint64_t local = read_le(z, at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > eocd) bad("corrupt central directory");
    const std::string member = printable(z.substr(at + 46, name_len), 200);
    // zip64 extra field (id 1): the 8-byte values replace whichever fields read 0xffffffff.
    for (size_t x = at + 46 + name_len, end = x + extra_len; x + 4 <= end;) {
      const uint64_t id = read_le(z, x, 2), len = read_le(z, x + 2, 2);
      if (x + 4 + len > end) bad("corrupt extra field of " + member);
      if (id == 1) {
        size_t f = x + 4;
        for (uint64_t* v : {&usize, &csize, &local})
          if (*v == 0xffffffff) {
            if (f + 8 > x + 4 + len) bad("corrupt zip64 field of " + member);
            *v = read_le(z, f, 8);
            f += 8;
          }
      }
      x += 4 + len;
    }
    at += 46 + name_len + extra_len + comment_len;
    const std::string label = path + ":" + member;
    if (local + 30 > z.size() || read_le(z, local, 4) != 0x04034b50)
      bad("corrupt local header of " + member);
    const size_t data = local + 30 + read_le(z, local + 26, 2) + read_le(z, local + 28, 2);
    if (data > z.size() || csize > z.size() - data) bad("member " + member + " runs past the end");
    if (usize >= 0xffffffff || csize >= 0xffffffff) bad("member " + member + " is 4 GiB or more");
    std::string raw;
    if (method == 0) {
      if (csize != usize) bad("stored member " + member + " has two sizes");
      raw.assign(z.substr(data, csize));
    } else if (method == 8) {
      // Deflate expands at most 1032:1, so a larger claimed size is a lie (and would make a
      // tiny file allocate gigabytes).
      if (usize > csize * 1032 + 1024)
        bad("member " + member + " claims " + std::to_string(usize) + " bytes from " +
            std::to_string(csize) + " compressed");
      raw.resize(usize);
      z_stream s{};
      if (inflateInit2(&s, -MAX_WBITS) != Z_OK) bad("zlib initialisation failed");
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data() + data));
      s.avail_in = static_cast<uInt>(csize);
      s.next_out = reinterpret_cast<Bytef*>(raw.data());
      s.avail_out = static_cast<uInt>(usize);
      const int rc = inflate(&s, Z_FINISH);
      const uint64_t produced = s.total_out;
      inflateEnd(&s);
      if (rc != Z_STREAM_END || produced != usize) bad("member " + member + " does not inflate");
    } else {
      bad("member " + member + " uses compression method " + std::to_string(method) +
          " (stored and deflated are read)");
    }
    if (crc32(0L, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uInt>(raw.size())) != crc)
      bad("member " + member + " fails its CRC-32 check");
    std::string key = member;
    if (key.size() > 4 && key.substr(key.size() - 4) == ".npy") key.resize(key.size() - 4);
    if (out.count(key)) bad("two members named " + key);
    out.emplace(key, parse_npy(raw, label));
  }
  return out;
}

Tensor to_tensor(const NpyArray& a, DType dtype, Device device) {
  if (a.shape.size() > 8)
    fail<ShapeError>("to_tensor: a .npy array of rank ", a.shape.size(), " (at most 8)");
  Shape s;
  for (int64_t e : a.shape) s.push_back(e);
  return from_vector(a.values, s, dtype, device);
}

}  // namespace sg::nn
