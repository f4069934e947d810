// The strict JSON parser (SAX into a DOM, bounded depth, no duplicate keys) and bounded
// excerpts for error messages. See strict_json.hpp.
#include "nn/strict_json.hpp"

#include <optional>
#include <utility>

namespace sg::nn {

namespace {

using json = nlohmann::json;

// Builds the DOM like nlohmann's own SAX DOM parser, plus the depth and duplicate-key checks.
// `stack_` holds the open containers (pointers stay valid: a container's parent does not change
// while the container is open); `slot_` is the value of the last key read.
class StrictBuilder {
 public:
  explicit StrictBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return put(nullptr); }
  bool boolean(bool v) { return put(v); }
  bool number_integer(json::number_integer_t v) { return put(v); }
  bool number_unsigned(json::number_unsigned_t v) { return put(v); }
  bool number_float(json::number_float_t v, const json::string_t&) { return put(v); }
  bool string(json::string_t& v) { return put(std::move(v)); }
  bool binary(json::binary_t& v) { return put(json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(json::string_t& k) {
    auto& members = stack_.back()->get_ref<json::object_t&>();
    auto [it, inserted] = members.try_emplace(k);
    if (!inserted) {
      std::vector<std::string> path = path_;
      path.back() = k;
      std::string dotted;
      for (const auto& p : path) {
        if (!dotted.empty()) dotted += '.';
        dotted += text_excerpt(p);
      }
      JsonError e(std::string("key '").append(dotted).append("' is given twice"));
      e.duplicate = std::move(path);
      error_ = std::move(e);
      return false;
    }
    path_.back() = std::move(k);
    slot_ = &it->second;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) {
    error_ = JsonError(text_excerpt(ex.what(), 300));
    return false;
  }

  json take() { return std::move(root_); }
  JsonError error() const { return error_.value_or(JsonError("the JSON parser stopped")); }

 private:
  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      auto& elements = top.get_ref<json::array_t&>();
      elements.push_back(std::move(v));
      return &elements.back();
    }
    *slot_ = std::move(v);
    return slot_;
  }
  bool put(json v) {
    note_index();
    place(std::move(v));
    return true;
  }
  bool open(json v) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      error_ = JsonError("nested deeper than " + std::to_string(max_depth_) +
                         " levels of arrays and objects");
      return false;
    }
    note_index();
    stack_.push_back(place(std::move(v)));
    path_.emplace_back();
    return true;
  }
  // Inside an array, the next element's path entry is its index. (Strings are built by appending:
  // GCC 12 warns, wrongly, about -Wrestrict in "[" + std::string.)
  void note_index() {
    if (stack_.empty() || !stack_.back()->is_array()) return;
    std::string& p = path_.back();
    p = "[";
    p += std::to_string(stack_.back()->size());
    p += ']';
  }
  bool close() {
    stack_.pop_back();
    path_.pop_back();
    return true;
  }

  int max_depth_;
  json root_;
  std::vector<json*> stack_;
  std::vector<std::string> path_;  // per open container: the current key or "[index]"
  json* slot_ = nullptr;
  std::optional<JsonError> error_;
};

void excerpt_into(const json& v, std::string& out, std::size_t budget, int depth) {
  if (out.size() > budget) return;
  if (v.is_array() || v.is_object()) {
    const bool obj = v.is_object();
    if (depth >= 8) {
      out += obj ? "{...}" : "[...]";
      return;
    }
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = v.begin(); it != v.end() && out.size() <= budget; ++it) {
      if (!first) out += ',';
      first = false;
      if (obj) {
        excerpt_into(json(text_excerpt(it.key(), budget)), out, budget, depth + 1);
        out += ':';
      }
      excerpt_into(*it, out, budget, depth + 1);
    }
    out += obj ? '}' : ']';
    return;
  }
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    out += json(text_excerpt(s, budget + 1)).dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  out += v.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

json parse_json_strict(std::string_view text, int max_depth) {
  StrictBuilder builder(max_depth);
  if (!json::sax_parse(text.data(), text.data() + text.size(), &builder, json::input_format_t::json,
                       true))
    throw builder.error();
  return builder.take();
}

std::string text_excerpt(std::string_view s, std::size_t max_chars) {
  std::size_t cut = s.size();
  if (cut > max_chars) {
    cut = max_chars;
    // Back up over UTF-8 continuation bytes so that the cut falls between characters.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  }
  std::string out;
  out.reserve(cut + 3);
  for (std::size_t i = 0; i < cut; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    // Control characters escaped: a message quoting them stays on one line.
    static const char* hex = "0123456789abcdef";
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (cut < s.size()) out += "...";
  return out;
}

std::string json_excerpt(const json& v, std::size_t max_chars) {
  std::string out;
  excerpt_into(v, out, max_chars, 0);
  return text_excerpt(out, max_chars);
}

}  // namespace sg::nn
