#pragma once
// Go's time.Time JSON encoding (RFC3339Nano: trailing fraction zeros trimmed, "Z" for UTC).
// Microsecond time points, because keep_alive "forever" puts expires_at ~292 years ahead
// (year ~2318, ollama-behaviour.md §1), past the range of nanosecond system_clock.
#include <chrono>
#include <string>

#include "common/ollama_duration.h"

namespace fake_ollama {

using MicroTime = std::chrono::sys_time<std::chrono::microseconds>;

MicroTime microNow();
MicroTime addSaturating(MicroTime t, oasis::ollama::Duration d);  // forever -> t + MaxInt64 ns
std::string goTimeLocal(MicroTime t);  // expires_at, modified_at: server local time with offset
std::string goTimeUtc(MicroTime t);    // created_at: UTC, ends in Z
inline MicroTime toMicro(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<std::chrono::microseconds>(t);
}

}  // namespace fake_ollama
