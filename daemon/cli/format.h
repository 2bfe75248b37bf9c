#pragma once
// oasisctl's readable output: pure functions from the control API's JSON to text, so the
// tables are unit-tested against fixtures. Colour is ANSI SGR and only when Style::color.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oasis::cli {

struct Style {
  bool color = false;
  std::string red(std::string_view s) const { return wrap("31", s); }
  std::string green(std::string_view s) const { return wrap("32", s); }
  std::string yellow(std::string_view s) const { return wrap("33", s); }
  std::string bold(std::string_view s) const { return wrap("1", s); }
  std::string dim(std::string_view s) const { return wrap("2", s); }
  std::string wrap(std::string_view code, std::string_view s) const;
};

// 1536 -> "1.5 KiB", 0 -> "0 B", 5368709120 -> "5.0 GiB".
std::string formatBytes(double bytes);
// Seconds to a short human duration: 0.25 -> "250ms", 42 -> "42s", 300 -> "5m",
// 330 -> "5m30s", 7260 -> "2h1m", 90000 -> "1d1h".
std::string formatDuration(double seconds);
// Milliseconds as a latency: 850 -> "850ms", 1234 -> "1.23s", 65000 -> "1m5s".
std::string formatLatencyMs(double ms);
// "5m" -> 300, "30s" -> 30, "2h" -> 7200, "1d" -> 86400, "1h30m" -> 5400, "90" -> 90,
// "0.5s" -> 0.5; nullopt for anything else (empty, negative, unknown unit).
std::optional<double> parseDuration(std::string_view text);

// "[##########..........]  12/24 done  1 failed  ETA 1m5s" (width = number of cells).
std::string progressBar(std::size_t done, std::size_t failed, std::size_t total, std::size_t width,
                        std::optional<double> etaSeconds);

// Fixed-width columns, two spaces apart; cells may contain ANSI codes (not counted).
std::string renderTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
// Display width of a string ignoring ANSI escapes (UTF-8 counted by code points).
std::size_t displayWidth(std::string_view s);

// ISO-8601 "2026-12-04T21:05:30.123Z" -> "21:05:30" (UTC clock time); others unchanged.
std::string clockTime(const std::string& iso);

// Status: healthy means dispatch is running and the server is up.
bool statusHealthy(const nlohmann::json& status);
std::string formatStatus(const nlohmann::json& status, const Style& style);
std::string formatEventLine(const nlohmann::json& event, const Style& style);
std::string formatTimeline(const nlohmann::json& timeline, int bucketSeconds);
std::string formatTrials(const nlohmann::json& list, const Style& style);
std::string formatTrial(const nlohmann::json& record, const Style& style);
std::string formatPreflight(const nlohmann::json& preflight, const Style& style);
std::string formatActions(const nlohmann::json& answer);

}  // namespace oasis::cli
