// A progress bar for long loops on stderr: percentage, iterations per second, ETA and a
// caller's status (e.g. the running loss). On a terminal it redraws one line at most ten times
// a second; otherwise (a log file, ctest) it prints a plain line every tenth of the run.
//
//   Progress bar("train", first_step, total_steps);
//   for (...) { ...; bar.update(step + 1, fmt("loss %.4f", loss)); }
//   bar.finish();
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sg::cli {

class Progress {
 public:
  Progress(std::string label, int64_t start, int64_t total);
  void update(int64_t done, const std::string& status);
  void finish();           // draws the final state and ends the line
  double seconds() const;  // since construction

 private:
  void draw(bool final);
  std::string label_, status_;
  int64_t start_, total_, done_;
  bool tty_, finished_ = false;
  int64_t last_decile_ = -1;
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

}  // namespace sg::cli
