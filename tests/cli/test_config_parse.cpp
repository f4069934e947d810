// Configuration files are hostile input: a key given twice, a directory or FIFO instead of a
// file, nesting 100k deep (JSON, YAML, checkpoint metadata, overrides), alias bombs and huge
// values each give one short ConfigError line naming the key or the file, never a crash, a
// hang or a silently ignored setting.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "cli/config.hpp"

using namespace sg::cli;
namespace fs = std::filesystem;

namespace {

struct ConfigDir {
  fs::path dir;
  ConfigDir() {
    dir = fs::temp_directory_path() / ("sg_config_parse_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(std::random_device{}()));
    fs::create_directories(dir);
  }
  ~ConfigDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string path = (dir / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
};

// `f` must throw a ConfigError of one short line containing every fragment.
void expect_config_error(const std::function<void()>& f,
                         const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    INFO(msg.substr(0, 2000));
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.size() < 800);
    for (const auto& frag : fragments) CHECK_THAT(msg, Catch::Contains(frag));
    return;
  }
  FAIL("no ConfigError");
}

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + "1" + std::string(depth, ']');
}

}  // namespace

TEST_CASE("config: a key given twice is an error naming it", "[cli][config][hostile]") {
  ConfigDir d;
  Config c = default_config();
  expect_config_error(
      [&] { merge_file(c, d.file("dup.json", R"({"train": {"steps": 10, "steps": 20}})")); },
      {"dup.json", "'train.steps' is given twice"});
  expect_config_error(
      [&] {
        merge_file(c, d.file("dup2.json", R"({"train": {"steps": 10}, "train": {"lr": 1}})"));
      },
      {"dup2.json", "'train' is given twice"});
  expect_config_error(
      [&] { merge_file(c, d.file("dup.yaml", "train:\n  steps: 10\n  lr: 0.1\n  steps: 20\n")); },
      {"dup.yaml", "'train.steps' is given twice"});
  expect_config_error(
      [&] { merge_file(c, d.file("dup2.yaml", "model:\n  hidden: 4\nmodel:\n  layers: 2\n")); },
      {"dup2.yaml", "'model' is given twice"});
  expect_config_error([&] { merge_file(c, d.file("dup3.yml", "{a: 1, a: 2}\n")); },
                      {"dup3.yml", "'a' is given twice"});
  expect_config_error(
      [&] { from_text(R"({"sde": {"name": "vp", "name": "ve"}})", "ck.safetensors"); },
      {"ck.safetensors", "'sde.name' is given twice"});
  CHECK(c == default_config());  // nothing was merged
}

TEST_CASE("config: a directory or a FIFO given as the file is refused", "[cli][config][hostile]") {
  ConfigDir d;
  Config c = default_config();
  fs::create_directories(d.dir / "configs");
  fs::create_directories(d.dir / "run.yaml");
  fs::create_directories(d.dir / "run.json");
  for (const std::string name : {"configs", "run.yaml", "run.json"}) {
    const std::string path = (d.dir / name).string();
    expect_config_error([&] { merge_file(c, path); }, {"cannot read", path, "is a directory"});
  }
  const std::string fifo = (d.dir / "fifo.yaml").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // So that the old code (which blocked in open) fails instead of hanging.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  expect_config_error([&] { merge_file(c, fifo); }, {"cannot read", fifo, "not a regular file"});
  writer.join();
  if (::access("/dev/zero", R_OK) == 0)
    expect_config_error([&] { merge_file(c, "/dev/zero"); }, {"/dev/zero", "not a regular file"});
  CHECK(c == default_config());
}

TEST_CASE("config: nesting 100k deep is an error and no crash", "[cli][config][hostile]") {
  ConfigDir d;
  Config c = default_config();
  const std::string deep = nested(100000);
  expect_config_error([&] { merge_file(c, d.file("deep.json", deep)); },
                      {"deep.json", "nested deeper than"});
  expect_config_error(
      [&] { merge_file(c, d.file("deep2.json", R"({"model": {"multipliers": )" + deep + "}}")); },
      {"deep2.json", "nested deeper than"});
  // Just within the limit: the wrong value is quoted in part only.
  expect_config_error(
      [&] {
        merge_file(c, d.file("deep3.json", R"({"model": {"multipliers": )" + nested(60) + "}}"));
      },
      {"deep3.json", "'model.multipliers' expects a list"});
  expect_config_error([&] { merge_file(c, d.file("deep.yaml", "model:\n  multipliers: " + deep)); },
                      {"deep.yaml", "YAML"});
  expect_config_error([&] { merge_file(c, d.file("deep2.yaml", "a: " + nested(100))); },
                      {"deep2.yaml", "nested deeper than"});
  // A checkpoint's config metadata and a command-line override.
  expect_config_error([&] { from_text(R"({"model": {"multipliers": )" + deep + "}}", "ck"); },
                      {"ck", "nested deeper than"});
  expect_config_error([&] { apply_override(c, "model.multipliers=" + deep); },
                      {"'model.multipliers'"});
  CHECK(c == default_config());
}

TEST_CASE("config: huge values and alias bombs give short errors quickly",
          "[cli][config][hostile]") {
  ConfigDir d;
  Config c = default_config();
  const std::string long_text(1'000'000, 'x');
  expect_config_error(
      [&] { merge_file(c, d.file("long.json", R"({"train": {"steps": ")" + long_text + "\"}}")); },
      {"long.json", "'train.steps' expects an integer"});
  expect_config_error([&] { merge_file(c, d.file("longkey.json", "{\"" + long_text + "\": 1}")); },
                      {"longkey.json", "unknown key"});
  expect_config_error([&] { from_text("{\"a\": \"" + long_text, "ck"); }, {"ck", "not valid JSON"});
  // Nine levels of ten aliases each: 10^9 values if expanded.
  std::string bomb = "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n";
  for (int i = 1; i <= 9; ++i) {
    const std::string name = std::to_string(i), below = std::to_string(i - 1);
    bomb.append("a").append(name).append(": &a").append(name).append(" [");
    for (int k = 0; k < 10; ++k) bomb.append(k ? ", *a" : "*a").append(below);
    bomb += "]\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  expect_config_error([&] { merge_file(c, d.file("bomb.yaml", bomb)); },
                      {"bomb.yaml", "after expanding aliases"});
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  // Invalid UTF-8 in YAML is refused (JSON refuses it while parsing).
  expect_config_error([&] { merge_file(c, d.file("latin1.yaml", "data:\n  name: caf\xe9\n")); },
                      {"latin1.yaml", "not valid UTF-8"});
  expect_config_error([&] { apply_override(c, "data.name=caf\xe9"); },
                      {"override", "not valid UTF-8"});
  CHECK(c == default_config());
}

TEST_CASE("config: integers beyond int64 are refused and never wrap", "[cli][config][hostile]") {
  // 2^64 - 1 is a JSON/YAML unsigned integer; read as int64 it used to become -1.
  ConfigDir d;
  Config c = default_config();
  expect_config_error(
      [&] { merge_file(c, d.file("big.json", R"({"train": {"steps": 18446744073709551615}})")); },
      {"big.json", "'train.steps' expects an integer", "beyond int64"});
  expect_config_error(
      [&] { merge_file(c, d.file("big.yaml", "train:\n  steps: 9223372036854775808\n")); },
      {"big.yaml", "'train.steps'", "beyond int64"});
  expect_config_error([&] { apply_override(c, "model.multipliers=[1, 18446744073709551615]"); },
                      {"'model.multipliers' expects a list"});
  apply_override(c, "train.steps=9223372036854775807");
  CHECK(get_int(c, "train.steps") == 9223372036854775807LL);
}
