#include "common/ollama_duration.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

namespace oasis::ollama {

namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Unit lengths in nanoseconds, as in Go's time package.
std::optional<uint64_t> unitNanos(std::string_view u) {
  if (u == "ns") return 1;
  if (u == "us" || u == "\xC2\xB5s" /* µ U+00B5 */ || u == "\xCE\xBCs" /* μ U+03BC */) return 1000;
  if (u == "ms") return 1000000;
  if (u == "s") return 1000000000ULL;
  if (u == "m") return 60ULL * 1000000000ULL;
  if (u == "h") return 3600ULL * 1000000000ULL;
  return std::nullopt;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

std::string trimEnvValue(std::string_view v) {
  // envconfig.Var(): strings.Trim(strings.TrimSpace(v), "\"'")
  auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!v.empty() && isSpace(v.front())) v.remove_prefix(1);
  while (!v.empty() && isSpace(v.back())) v.remove_suffix(1);
  while (!v.empty() && (v.front() == '"' || v.front() == '\'')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == '\'')) v.remove_suffix(1);
  return std::string(v);
}

}  // namespace

Result<Duration> parseGoDuration(std::string_view orig) {
  std::string_view s = orig;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration(0);
  if (s.empty()) return Error("time: invalid duration " + quoted(orig));
  const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (neg ? 1 : 0);
  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || isDigit(s[0]))) return Error("time: invalid duration " + quoted(orig));
    // integer part
    uint64_t whole = 0;
    bool overflow = false;
    std::size_t i = 0;
    for (; i < s.size() && isDigit(s[i]); ++i) {
      if (__builtin_mul_overflow(whole, 10u, &whole) || __builtin_add_overflow(whole, uint64_t(s[i] - '0'), &whole))
        overflow = true;
    }
    bool hadWhole = i > 0;
    s.remove_prefix(i);
    if (overflow) return Error("time: invalid duration " + quoted(orig));
    // fraction
    long double frac = 0;
    bool hadFrac = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      long double scale = 1;
      std::size_t j = 0;
      for (; j < s.size() && isDigit(s[j]); ++j) {
        scale /= 10;
        frac += (s[j] - '0') * scale;
      }
      hadFrac = j > 0;
      s.remove_prefix(j);
    }
    if (!hadWhole && !hadFrac) return Error("time: invalid duration " + quoted(orig));
    // unit
    std::size_t k = 0;
    while (k < s.size() && s[k] != '.' && !isDigit(s[k])) ++k;
    if (k == 0) return Error("time: missing unit in duration " + quoted(orig));
    auto unitText = s.substr(0, k);
    s.remove_prefix(k);
    auto unit = unitNanos(unitText);
    if (!unit) return Error("time: unknown unit " + quoted(unitText) + " in duration " + quoted(orig));
    uint64_t v = 0;
    if (__builtin_mul_overflow(whole, *unit, &v)) return Error("time: invalid duration " + quoted(orig));
    if (frac > 0) {
      auto extra = static_cast<uint64_t>(frac * static_cast<long double>(*unit));
      if (__builtin_add_overflow(v, extra, &v)) return Error("time: invalid duration " + quoted(orig));
    }
    if (__builtin_add_overflow(total, v, &total) || total > limit)
      return Error("time: invalid duration " + quoted(orig));
  }
  if (neg) {
    if (total == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1)
      return Duration(std::numeric_limits<int64_t>::min());
    return Duration(-static_cast<int64_t>(total));
  }
  return Duration(static_cast<int64_t>(total));
}

Result<std::optional<Duration>> parseKeepAliveJson(const nlohmann::json& value) {
  if (value.is_null()) return std::optional<Duration>{};
  if (value.is_number()) {
    // time.Duration(t * float64(time.Second)); negative -> MaxInt64
    long double secs = value.get<double>();
    long double ns = secs * 1e9L;
    if (ns < 0) return std::optional<Duration>(kForever);
    if (ns >= static_cast<long double>(std::numeric_limits<int64_t>::max()))
      return std::optional<Duration>(kForever);  // Go's float->int conversion is undefined here; saturate
    return std::optional<Duration>(Duration(static_cast<int64_t>(ns)));
  }
  if (value.is_string()) {
    auto d = parseGoDuration(value.get_ref<const std::string&>());
    if (!d) return d.error();
    if (d->count() < 0) return std::optional<Duration>(kForever);
    return std::optional<Duration>(*d);
  }
  // Go: fmt.Errorf("Unsupported type: '%s'", reflect.TypeOf(v))
  std::string goType = value.is_boolean() ? "bool" : value.is_array() ? "[]interface {}" : "map[string]interface {}";
  return Error("Unsupported type: '" + goType + "'");
}

Duration keepAliveFromEnv(const char* raw) {
  if (raw == nullptr) return kDefaultKeepAlive;
  std::string v = trimEnvValue(raw);
  if (v.empty()) return kDefaultKeepAlive;
  if (auto d = parseGoDuration(v)) return d->count() < 0 ? kForever : *d;
  // strconv.Atoi fallback: integer seconds
  bool neg = false;
  std::string_view digits = v;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > 18) return kDefaultKeepAlive;
  int64_t n = 0;
  for (char c : digits) {
    if (!isDigit(c)) return kDefaultKeepAlive;
    n = n * 10 + (c - '0');
  }
  if (neg) return kForever;
  int64_t ns = 0;
  if (__builtin_mul_overflow(n, int64_t(1000000000), &ns)) return kForever;
  return Duration(ns);
}

std::string formatGoDuration(Duration d) {
  int64_t n = d.count();
  if (n == 0) return "0s";
  bool neg = n < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(n + 1)) + 1 : static_cast<uint64_t>(n);
  auto fracString = [](uint64_t v, int digits) {
    // v has `digits` decimal digits of fraction; trims trailing zeros
    std::string f(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i) {
      f[static_cast<std::size_t>(i)] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    while (!f.empty() && f.back() == '0') f.pop_back();
    return f.empty() ? std::string() : "." + f;
  };
  std::string out;
  if (u < 1000000000ULL) {
    if (u < 1000) {
      out = std::to_string(u) + "ns";
    } else if (u < 1000000) {
      out = std::to_string(u / 1000) + fracString(u % 1000, 3) + "\xC2\xB5s";
    } else {
      out = std::to_string(u / 1000000) + fracString(u % 1000000, 6) + "ms";
    }
  } else {
    uint64_t secs = u / 1000000000ULL;
    uint64_t nanos = u % 1000000000ULL;
    uint64_t h = secs / 3600, m = (secs / 60) % 60, s = secs % 60;
    std::string sec = std::to_string(s) + fracString(nanos, 9) + "s";
    if (h > 0)
      out = std::to_string(h) + "h" + std::to_string(m) + "m" + sec;
    else if (m > 0)
      out = std::to_string(m) + "m" + sec;
    else
      out = sec;
  }
  return neg ? "-" + out : out;
}

nlohmann::json keepAliveToJson(Duration d) {
  if (d.count() < 0 || isForever(d)) return -1;
  return formatGoDuration(d);
}

}  // namespace oasis::ollama
