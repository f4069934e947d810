// Shared by the fuzz targets: the one-line error message check, a private scratch directory (in
// /dev/shm when there is one, so that the loaders' file I/O and the writer's fsync stay cheap) and
// writing an input there.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace sg::fuzz {

// The scratch directory of this process, removed at exit. (Never destroyed: the exit handler
// runs after the destructors of statics constructed before it was registered.)
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    auto* d = new std::string((base / ("sg_fuzz_" + std::to_string(::getpid()))).string());
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

// An error message must be one line of at most 4096 bytes; aborts (a finding) otherwise.
inline void check_message(const char* what) {
  const std::size_t n = std::strlen(what);
  if (n > 4096 || std::memchr(what, '\n', n)) {
    std::fprintf(stderr, "bad error message (%zu bytes): %.300s\n", n, what);
    std::abort();
  }
}

// Writes `size` bytes to scratch_dir()/name (replacing it) and returns the path.
inline std::string write_input(const std::string& name, const void* data, std::size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w <= 0) std::abort();
    p += w, size -= static_cast<std::size_t>(w);
  }
  ::close(fd);
  return path;
}

}  // namespace sg::fuzz
