#pragma once
// Time is injected. Logic takes a Clock& (or a `now` argument); only SystemClock reads the
// real clocks. Tests use ManualClock and advance it explicitly, so no test of logic sleeps.
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

namespace oasis {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Seconds = std::chrono::duration<double>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steadyNow() const = 0;
  virtual WallTime wallNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  SteadyTime steadyNow() const override;
  WallTime wallNow() const override;
  static SystemClock& instance();
};

// A clock that moves only when told to. Thread-safe so that tests may read it from the
// io_context thread while the test body advances it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime wallStart = WallTime{} + std::chrono::hours(24 * 365 * 56));
  SteadyTime steadyNow() const override;
  WallTime wallNow() const override;
  void advance(std::chrono::nanoseconds d);
  template <typename Rep, typename Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    advance(std::chrono::duration_cast<std::chrono::nanoseconds>(d));
  }

 private:
  mutable std::mutex mu_;
  SteadyTime steady_;
  WallTime wall_;
};

// ISO-8601 helpers shared by the store, the API and Ollama's JSON.
std::string formatIso8601Utc(WallTime t);                 // 2026-08-21T18:48:22.386139Z
std::string formatIso8601Local(WallTime t);               // 2026-08-21T19:03:12.514722-07:00 (Ollama's expires_at)
bool parseIso8601(std::string_view text, WallTime& out);  // accepts Z or ±hh:mm offsets, fractions

double toUnixSeconds(WallTime t);
WallTime fromUnixSeconds(double s);

}  // namespace oasis
