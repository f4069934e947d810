// Strict JSON for files a user (or an attacker) hands us: safetensors headers, checkpoint
// metadata and run configurations. nlohmann::json::parse accepts any nesting depth and lets a
// key given twice silently take its last value, and its parser callback is quadratic in the
// number of children of an object; formatting a deeply nested value with dump() then recurses
// once per level and overflows the stack. This parser builds the same DOM through the SAX
// interface in linear time, never recursing, and refuses
//   - invalid JSON (the message is bounded, even for a 100 MB unterminated string),
//   - nesting deeper than `max_depth` arrays/objects,
//   - an object that gives a key twice (JsonError::duplicate is the key's path).
// json_excerpt / text_excerpt give bounded, valid-UTF-8 excerpts for error messages.
//
//   try { json h = sg::nn::parse_json_strict(text, 16); }
//   catch (const sg::nn::JsonError& e) { ... e.what() has no file name: add yours ... }
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sg::nn {

struct JsonError : std::runtime_error {
  using std::runtime_error::runtime_error;
  // For a repeated key: its path from the root (object keys; "[i]" for array elements), the
  // repeated key last. Empty for any other problem.
  std::vector<std::string> duplicate;
};

constexpr int kDefaultJsonDepth = 64;

// One JSON value from `text` (whitespace around it allowed, nothing else); JsonError otherwise.
nlohmann::json parse_json_strict(std::string_view text, int max_depth = kDefaultJsonDepth);

// `v` as compact JSON cut to at most about `max_chars` characters ("..." marks a cut; levels
// below a small depth print as "..."). Never recurses deeper than that small depth.
std::string json_excerpt(const nlohmann::json& v, std::size_t max_chars = 60);
// `s` cut to at most `max_chars` bytes at a UTF-8 character boundary, "..." marking a cut, with
// control characters escaped (\n, \x01): an error message quoting it stays on one line.
std::string text_excerpt(std::string_view s, std::size_t max_chars = 60);

}  // namespace sg::nn
