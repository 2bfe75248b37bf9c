#include "common/clock.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace oasis {

SteadyTime SystemClock::steadyNow() const { return std::chrono::steady_clock::now(); }
WallTime SystemClock::wallNow() const { return std::chrono::system_clock::now(); }
SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

ManualClock::ManualClock(WallTime wallStart) : steady_(SteadyTime{} + std::chrono::hours(1)), wall_(wallStart) {}
SteadyTime ManualClock::steadyNow() const {
  std::lock_guard lock(mu_);
  return steady_;
}
WallTime ManualClock::wallNow() const {
  std::lock_guard lock(mu_);
  return wall_;
}
void ManualClock::advance(std::chrono::nanoseconds d) {
  std::lock_guard lock(mu_);
  steady_ += d;
  wall_ += std::chrono::duration_cast<WallTime::duration>(d);
}

namespace {
std::string format(WallTime t, bool local) {
  // Whole seconds and the remainder in integer nanoseconds, floored: converting seconds back
  // to nanoseconds overflows for the earliest representable times (a `since` in year 1013
  // saturates to WallTime::min(); found by fuzz_http_request).
  constexpr long long kNs = 1000000000;
  long long ns = t.time_since_epoch().count();
  long long secs = ns / kNs, rem = ns % kNs;
  if (rem < 0) {
    rem += kNs;
    secs -= 1;
  }
  long long micros = rem / 1000;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (local) localtime_r(&tt, &tm); else gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
  std::string out(buf);
  if (!local) return out + "Z";
  long off = tm.tm_gmtoff;
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  off = std::labs(off);
  std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
  return out + buf;
}

// days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm)
long long daysFromCivil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}
}  // namespace

std::string formatIso8601Utc(WallTime t) { return format(t, false); }
std::string formatIso8601Local(WallTime t) { return format(t, true); }

bool parseIso8601(std::string_view s, WallTime& out) {
  auto digits = [&](size_t pos, size_t n, int& v) {
    if (pos + n > s.size()) return false;
    v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    return true;
  };
  int Y, M, D, h, m, sec;
  if (!digits(0, 4, Y) || s.size() < 19 || s[4] != '-' || !digits(5, 2, M) || s[7] != '-' || !digits(8, 2, D) ||
      (s[10] != 'T' && s[10] != ' ') || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, m) || s[16] != ':' ||
      !digits(17, 2, sec))
    return false;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return false;
  size_t pos = 19;
  long long nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    long long scale = 100000000;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (scale > 0) nanos += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return false;
  }
  long long offset = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
      pos++;
    } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
      int oh, om;
      if (!digits(pos + 1, 2, oh) || !digits(pos + 4, 2, om)) return false;
      offset = (oh * 3600LL + om * 60LL) * (s[pos] == '-' ? -1 : 1);
      pos += 6;
    } else {
      return false;
    }
  }
  if (pos != s.size()) return false;
  long long days = daysFromCivil(Y, static_cast<unsigned>(M), static_cast<unsigned>(D));
  long long total = days * 86400LL + h * 3600LL + m * 60LL + sec - offset;
  // keep_alive < 0 puts Ollama's expires_at ~292 years ahead (year ~2318), beyond what a
  // nanosecond system_clock holds (~2262): saturate instead of overflowing.
  constexpr long long kMaxSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(WallTime::duration::max()).count() - 1;
  if (total >= kMaxSeconds) {
    out = WallTime::max();
    return true;
  }
  if (total <= -kMaxSeconds) {
    out = WallTime::min();
    return true;
  }
  out = WallTime{} + std::chrono::duration_cast<WallTime::duration>(std::chrono::seconds(total) +
                                                                    std::chrono::nanoseconds(nanos));
  return true;
}

double toUnixSeconds(WallTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
WallTime fromUnixSeconds(double s) {
  return WallTime{} + std::chrono::duration_cast<WallTime::duration>(std::chrono::duration<double>(s));
}

}  // namespace oasis
