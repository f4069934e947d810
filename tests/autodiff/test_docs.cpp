// The docs say what the code does: the primitive count quoted in README.md and docs/design.md
// is the op list's, and every source file a comment or a doc names by path exists.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "autodiff/ops/op_list.hpp"

namespace fs = std::filesystem;

namespace {
const fs::path kRoot = fs::path(SG_DATA_DIR).parent_path();
std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
bool skipped(const fs::path& rel) {
  const std::string top = rel.begin()->string();
  return top.rfind("build", 0) == 0 || top == ".git" || top == "out" || top == "data" ||
         top == "third_party";
}
}  // namespace

TEST_CASE("the primitive count in the docs is the op list's", "[docs]") {
  const int primitives = sg::kOpCount - 1;  // `custom` carries a caller's rule, not a primitive
  const std::regex quoted(R"((\d+)\s+primitives)");
  for (const char* doc : {"README.md", "docs/design.md"}) {
    const std::string text = read(kRoot / doc);
    std::smatch m;
    REQUIRE(std::regex_search(text, m, quoted));
    INFO(doc << " says " << m[1] << " primitives; the op list has " << primitives);
    CHECK(std::stoi(m[1]) == primitives);
  }
}

TEST_CASE("every source path named in comments and docs exists", "[docs]") {
  // paths such as autodiff/tape/tape.cpp, or tape/tape.cpp relative to autodiff/
  const std::regex path(R"(\b([a-z_]+/)+[a-z_0-9]+\.(cpp|hpp|cu|cuh|py|sh)\b)");
  const std::set<std::string> kinds = {".cpp", ".hpp", ".cu", ".cuh", ".md", ".py"};
  const std::vector<fs::path> bases = {kRoot, kRoot / "autodiff", kRoot / "autodiff/backend",
                                       kRoot / "bench"};
  std::vector<std::string> missing;
  for (const auto& entry : fs::recursive_directory_iterator(kRoot)) {
    if (!entry.is_regular_file()) continue;
    const fs::path rel = fs::relative(entry.path(), kRoot);
    if (skipped(rel) || !kinds.count(rel.extension().string())) continue;
    const std::string text = read(entry.path());
    for (std::sregex_iterator it(text.begin(), text.end(), path), end; it != end; ++it) {
      const std::string named = it->str();
      if (it->position() > 0 && text[static_cast<std::size_t>(it->position()) - 1] == '<')
        continue;  // a system header
      // a project path: relative to the root or to a folder that holds project folders
      const std::string top = named.substr(0, named.find('/'));
      bool ours = false, found = false;
      for (const fs::path& base : bases) {
        ours |= fs::is_directory(base / top);
        found |= fs::exists(base / named);
      }
      found |= fs::exists(entry.path().parent_path() / named);
      if (ours && !found) missing.push_back(rel.string() + " names " + named);
    }
  }
  INFO([&] {
    std::string all;
    for (const std::string& m : missing) all += m + "\n";
    return all;
  }());
  CHECK(missing.empty());
}
