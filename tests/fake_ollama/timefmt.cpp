#include "tests/fake_ollama/timefmt.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace fake_ollama {

MicroTime microNow() { return toMicro(std::chrono::system_clock::now()); }

MicroTime addSaturating(MicroTime t, oasis::ollama::Duration d) {
  // Any int64 nanosecond duration fits in int64 microseconds with ~290,000 years to spare.
  return t + std::chrono::duration_cast<std::chrono::microseconds>(d);
}

namespace {
std::string format(MicroTime t, bool local) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  long long micros = (t - secs).count();
  std::time_t tt = static_cast<std::time_t>(secs.time_since_epoch().count());
  std::tm tm{};
  if (local)
    localtime_r(&tt, &tm);
  else
    gmtime_r(&tt, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d", static_cast<long long>(tm.tm_year) + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string out(buf);
  if (micros > 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", micros);
    std::string frac(buf);
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  long off = local ? tm.tm_gmtoff : 0;
  if (off == 0) return out + "Z";
  char sign = off < 0 ? '-' : '+';
  off = std::labs(off);
  std::snprintf(buf, sizeof buf, "%c%02ld:%02ld", sign, off / 3600, (off % 3600) / 60);
  return out + buf;
}
}  // namespace

std::string goTimeLocal(MicroTime t) { return format(t, true); }
std::string goTimeUtc(MicroTime t) { return format(t, false); }

}  // namespace fake_ollama
