// The stderr progress bar of the scoregrad command (progress.hpp).
#include "cli/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace sg::cli {
namespace {
std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return buf;
}
}  // namespace

Progress::Progress(std::string label, int64_t start, int64_t total)
    : label_(std::move(label)),
      start_(start),
      total_(total),
      done_(start),
      tty_(::isatty(STDERR_FILENO) != 0),
      t0_(std::chrono::steady_clock::now()),
      last_draw_(t0_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::update(int64_t done, const std::string& status) {
  done_ = done;
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  } else {
    const int64_t decile = total_ > 0 ? 10 * done_ / total_ : 10;
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? static_cast<double>(done_ - start_) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : NAN;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char line[512];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld %3.0f%% %.1f it/s %s %s %s", label_.c_str(),
                bar.c_str(), static_cast<long long>(done_), static_cast<long long>(total_),
                100 * frac, rate, final ? "in" : "ETA", clock_text(final ? elapsed : eta).c_str(),
                status_.c_str());
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

}  // namespace sg::cli
