#pragma once
// Ollama's keep_alive durations (ollama-behaviour.md §3 "Parsing" and §7 OLLAMA_KEEP_ALIVE).
//
// Ollama stores keep_alive as a Go time.Duration (int64 nanoseconds) and maps every negative
// value to math.MaxInt64 ("forever", about 292 years). We keep the same representation:
// std::chrono::nanoseconds, with nanoseconds::max() meaning forever, so arithmetic done by the
// callers must saturate (see addSaturating).
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace oasis::ollama {

using Duration = std::chrono::nanoseconds;

inline constexpr Duration kForever = Duration::max();          // Go: time.Duration(math.MaxInt64)
inline constexpr Duration kDefaultKeepAlive = std::chrono::minutes(5);

inline bool isForever(Duration d) { return d == kForever; }

// Go's time.ParseDuration: "[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+" or "0".
// A bare number other than 0 ("300") is an error ("missing unit in duration"), as in Go.
// The error messages mirror Go's: `time: missing unit in duration "300"`.
Result<Duration> parseGoDuration(std::string_view text);

// api.Duration.UnmarshalJSON: a JSON number is seconds (fractional allowed), a string goes
// through time.ParseDuration; negative results become kForever. Any other JSON type is an
// error. A JSON null means "absent" and yields std::nullopt (Ollama leaves the pointer nil).
Result<std::optional<Duration>> parseKeepAliveJson(const nlohmann::json& value);

// envconfig.KeepAlive(): time.ParseDuration, else integer seconds; negative -> forever;
// unset, empty or unparseable -> 5m (silently, as Ollama does). Quotes and spaces are trimmed
// like envconfig.Var().
Duration keepAliveFromEnv(const char* value);

// Go's Duration.String(): "5m0s", "1h30m0s", "0s", "1.5s", "2562047h47m16.854775807s".
std::string formatGoDuration(Duration d);

// api.Duration.MarshalJSON: negative -> -1, everything else a quoted Go string. We also write
// kForever as -1 (Go would print MaxInt64 as "2562047h47m16.854775807s"; -1 round-trips).
nlohmann::json keepAliveToJson(Duration d);

}  // namespace oasis::ollama
