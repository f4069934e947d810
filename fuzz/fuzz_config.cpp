// libFuzzer target: the configuration parsers. The first byte picks the entry point, the rest
// is its text: 'j' a JSON file, 'y' a YAML file, 'm' a checkpoint's config metadata
// (from_text), 'o' one override per line (apply_override); other first bytes map to these by
// value. Properties beyond "no crash, no sanitizer report, no leak":
//   - the only exception is ConfigError, one line of bounded length;
//   - an accepted configuration is written by to_text and read back by from_text unchanged
//     (what train saves in a checkpoint must load again).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli/config.hpp"
#include "fuzz/fuzz_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  char mode = static_cast<char>(data[0]);
  if (mode != 'j' && mode != 'y' && mode != 'm' && mode != 'o') mode = "jymo"[data[0] % 4];
  using namespace sg::cli;
  Config c = default_config();
  try {
    switch (mode) {
      case 'j':
        merge_file(c, sg::fuzz::write_input("config.json", text.data(), text.size()));
        break;
      case 'y':
        merge_file(c, sg::fuzz::write_input("config.yaml", text.data(), text.size()));
        break;
      case 'm':
        c = from_text(text, "metadata");
        break;
      default:
        for (std::size_t start = 0; start <= text.size();) {
          std::size_t end = text.find('\n', start);
          if (end == std::string::npos) end = text.size();
          if (end > start) apply_override(c, text.substr(start, end - start));
          start = end + 1;
        }
    }
  } catch (const ConfigError& e) {
    const std::size_t n = std::strlen(e.what());
    if (n > 4096 || std::memchr(e.what(), '\n', n)) {
      std::fprintf(stderr, "bad error message (%zu bytes): %.300s\n", n, e.what());
      std::abort();
    }
    return 0;
  }
  const std::string saved = to_text(c);
  Config back;
  try {
    back = from_text(saved, "round trip");
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "an accepted configuration does not read back: %s\n", e.what());
    std::abort();
  }
  if (back != c) {
    std::fprintf(stderr, "to_text/from_text changed the configuration:\n%s\n", saved.c_str());
    std::abort();
  }
  return 0;
}
