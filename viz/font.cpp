// The built-in bitmap font of sg::viz: a 5x7 glyph table (plus a descender row) for ASCII
// 32..126, and Image's text drawing and measuring.
#include <algorithm>
#include <cstdint>

#include "viz/plot.hpp"

namespace sg::viz {

namespace {

constexpr int kGlyphW = 5, kGlyphH = 8, kAdvance = 6;

// One glyph per entry, ASCII 32..126: row r (0 = top, 7 = descender) is bits 5r..5r+4, the
// leftmost column in the highest of the five bits.
constexpr uint64_t kGlyphs[95] = {
    0x0000000000, 0x0100421084, 0x000000014a, 0x0295f57d4a,  //   ! " #
    0x013c5751e4, 0x00e6820b38, 0x036554524c, 0x0000002084,  // $ % & '
    0x0088842082, 0x0208210888, 0x0009575480, 0x00084f9080,  // ( ) * +
    0x4118000000, 0x00000f0000, 0x0318000000, 0x0020820820,  // , - . /
    0x03a39ace2e, 0x0388421184, 0x07d041062e, 0x03a211105f,  // 0 1 2 3
    0x0085f928c2, 0x03a210fa1f, 0x03a31f4106, 0x021082083f,  // 4 5 6 7
    0x03a317462e, 0x030417c62e, 0x0018c03180, 0x0208c03180,  // 8 9 : ;
    0x0088882082, 0x0001f07c00, 0x0208208888, 0x010041062e,  // < = > ?
    0x03ab56862e, 0x04631fc62e, 0x07a31f463e, 0x03a308422e,  // @ A B C
    0x072518c65c, 0x07e10f421f, 0x04210f421f, 0x03e31bc22e,  // D E F G
    0x04631fc631, 0x038842108e, 0x0324210847, 0x04654c5251,  // H I J K
    0x07e1084210, 0x04631ad771, 0x04633ae631, 0x03a318c62e,  // L M N O
    0x04210f463e, 0x036558c62e, 0x04654f463e, 0x078217420f,  // P Q R S
    0x010842109f, 0x03a318c631, 0x011518c631, 0x02ab5ac631,  // T U V W
    0x0462a22a31, 0x0108422a31, 0x07e082083f, 0x039084210e,  // X Y Z [
    0x0002222200, 0x038421084e, 0x0000004544, 0xf800000000,  // \ ] ^ _
    0x0000000888, 0x03e2f0b800, 0x07a31cda10, 0x03a3083800,  // ` a b c
    0x03e319b421, 0x03a1f8b800, 0x02108e2126, 0x705f18bc00,  // d e f g
    0x04631cda10, 0x0388423004, 0x6484211802, 0x04a98a4a10,  // h i j k
    0x038842108c, 0x056b5ae800, 0x04631cd800, 0x03a318b800,  // l m n o
    0x843d18f800, 0x085f18bc00, 0x04210cd800, 0x0782e83c00,  // p q r s
    0x0192847108, 0x036718c400, 0x011518c400, 0x02ab58c400,  // t u v w
    0x0454454400, 0x705f18c400, 0x07d0417c00, 0x00c8441083,  // x y z {
    0x0108421084, 0x0608411098, 0x00002aa000,                // | } ~
};

uint64_t glyph(unsigned char ch) { return kGlyphs[(ch >= 32 && ch <= 126 ? ch : '?') - 32]; }

bool ink(uint64_t g, int col, int row) { return (g >> (5 * row + (kGlyphW - 1 - col))) & 1u; }

// Calls put(u, v) for every ink pixel of s laid out horizontally at the origin (u right,
// v down), scaled.
template <class Put>
void for_each_ink(const std::string& s, int scale, Put put) {
  for (size_t i = 0; i < s.size(); ++i) {
    const uint64_t g = glyph(static_cast<unsigned char>(s[i]));
    const int u0 = static_cast<int>(i) * kAdvance * scale;
    for (int row = 0; row < kGlyphH; ++row)
      for (int col = 0; col < kGlyphW; ++col)
        if (ink(g, col, row))
          for (int dv = 0; dv < scale; ++dv)
            for (int du = 0; du < scale; ++du) put(u0 + col * scale + du, row * scale + dv);
  }
}

}  // namespace

int Image::text_width(const std::string& s, int scale) {
  if (s.empty()) return 0;
  return (static_cast<int>(s.size()) * kAdvance - (kAdvance - kGlyphW)) * std::max(scale, 1);
}

int Image::text_height(int scale) { return kGlyphH * std::max(scale, 1); }

void Image::text(int x, int y, const std::string& s, Rgb c, int scale) {
  scale = std::max(scale, 1);
  for_each_ink(s, scale, [&](int u, int v) { set(x + u, y + v, c); });
}

void Image::text_vertical(int x, int y, const std::string& s, Rgb c, int scale) {
  scale = std::max(scale, 1);
  const int w = text_width(s, scale);
  for_each_ink(s, scale, [&](int u, int v) { set(x + v, y + w - 1 - u, c); });
}

}  // namespace sg::viz
