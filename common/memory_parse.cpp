#include "common/memory_parse.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <vector>

namespace oasis {
namespace {

constexpr std::size_t kMaxQuotedLine = 120;  // keep error messages short on garbage input

std::string_view trim(std::string_view s) {
  const auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string quoteLine(std::string_view line) {
  std::string out;
  for (char c : line.substr(0, kMaxQuotedLine)) {
    // Control bytes in garbage input would garble logs; show them as '?'.
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (line.size() > kMaxQuotedLine) out += "...";
  return "'" + out + "'";
}

struct Line {
  std::size_t number;  // 1-based
  std::string_view text;
};

// Splits on '\n', drops a trailing '\r' (files edited on other systems).
std::vector<Line> splitLines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back({number, line});
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

// Strict unsigned decimal: digits only, no sign, no overflow.
std::optional<uint64_t> parseU64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> parseDouble(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

Error lineError(std::string_view what, const Line& line, std::string_view problem) {
  return Error(std::string(what) + " line " + std::to_string(line.number) + ": " + std::string(problem) + " in " +
               quoteLine(line.text));
}

uint64_t saturatingMul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}

uint64_t saturatingAdd(uint64_t a, uint64_t b) { return (b > UINT64_MAX - a) ? UINT64_MAX : a + b; }

// `Object cache: 14 hits of 797355 lookups (0% hit rate)` (OS X <= 10.8).
bool parseObjectCache(std::string_view value, VmStatSnapshot& out) {
  auto hitsEnd = value.find(" hits of ");
  auto lookupsEnd = value.find(" lookups");
  if (hitsEnd == std::string_view::npos || lookupsEnd == std::string_view::npos || lookupsEnd < hitsEnd) return false;
  auto hits = parseU64(trim(value.substr(0, hitsEnd)));
  auto lookupsStart = hitsEnd + std::string_view(" hits of ").size();
  auto lookups = parseU64(trim(value.substr(lookupsStart, lookupsEnd - lookupsStart)));
  if (!hits || !lookups) return false;
  out.values["Object cache hits"] = *hits;
  out.values["Object cache lookups"] = *lookups;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// vm_stat
// ---------------------------------------------------------------------------------------

bool VmStatSnapshot::has(std::string_view label) const { return values.find(std::string(label)) != values.end(); }

uint64_t VmStatSnapshot::get(std::string_view label) const {
  auto it = values.find(std::string(label));
  return it == values.end() ? 0 : it->second;
}

Result<VmStatSnapshot> parseVmStat(std::string_view text) {
  static constexpr std::string_view kWhat = "vm_stat";
  static constexpr std::string_view kHeaderPrefix = "Mach Virtual Memory Statistics:";
  static constexpr std::string_view kPageSizePrefix = "(page size of ";
  static constexpr std::array<std::string_view, 6> kRequired = {"Pages free", "Pages active", "Pages inactive",
                                                                 "Pages wired down", "Pageins", "Pageouts"};

  VmStatSnapshot snap;
  bool sawHeader = false;
  for (const Line& line : splitLines(text)) {
    std::string_view body = trim(line.text);
    if (body.empty()) continue;

    if (!sawHeader) {
      if (body.substr(0, kHeaderPrefix.size()) != kHeaderPrefix) {
        return lineError(kWhat, line, "expected the header 'Mach Virtual Memory Statistics: (page size of N bytes)'");
      }
      std::string_view rest = trim(body.substr(kHeaderPrefix.size()));
      if (rest.substr(0, kPageSizePrefix.size()) != kPageSizePrefix || rest.size() < kPageSizePrefix.size() + 8 ||
          rest.substr(rest.size() - 7) != " bytes)") {
        return lineError(kWhat, line, "malformed page-size header");
      }
      auto size = parseU64(rest.substr(kPageSizePrefix.size(), rest.size() - kPageSizePrefix.size() - 7));
      // Kernel pages are 4 KiB (Intel) or 16 KiB (Apple Silicon); accept any sane power of two.
      if (!size || *size < 512 || *size > (1u << 24) || (*size & (*size - 1)) != 0) {
        return lineError(kWhat, line, "page size is not a power of two between 512 and 16 MiB");
      }
      snap.pageSize = *size;
      sawHeader = true;
      continue;
    }

    auto colon = body.find(':');
    if (colon == std::string_view::npos) {
      return lineError(kWhat, line,
                       "expected 'Label: value.' (interval-mode output, e.g. 'vm_stat 1', is not supported)");
    }
    std::string_view label = trim(body.substr(0, colon));
    std::string_view value = trim(body.substr(colon + 1));
    // `"Translation faults":` carries literal double quotes.
    if (label.size() >= 2 && label.front() == '"' && label.back() == '"') label = label.substr(1, label.size() - 2);
    if (label.empty()) return lineError(kWhat, line, "empty label");
    if (std::any_of(label.begin(), label.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      return lineError(kWhat, line, "control character in label");
    }

    if (label == "Object cache") {  // OS X <= 10.8 trailer; informative only
      if (!parseObjectCache(value, snap)) return lineError(kWhat, line, "malformed Object cache line");
      continue;
    }
    if (!value.empty() && value.back() == '.') value.remove_suffix(1);  // terminator, not a fraction
    auto number = parseU64(value);
    if (!number) return lineError(kWhat, line, "non-numeric value");
    if (!snap.values.emplace(std::string(label), *number).second) {
      return lineError(kWhat, line, "duplicate label '" + std::string(label) + "'");
    }
  }
  if (!sawHeader) return Error("vm_stat: empty input (no 'Mach Virtual Memory Statistics' header)");
  for (auto required : kRequired) {
    if (!snap.has(required)) {
      return Error("vm_stat: missing required line '" + std::string(required) + ":'");
    }
  }
  return snap;
}

// ---------------------------------------------------------------------------------------
// /proc/meminfo, /proc/vmstat, /proc/pressure/memory
// ---------------------------------------------------------------------------------------

Result<ProcMemInfo> parseProcMemInfo(std::string_view text) {
  static constexpr std::string_view kWhat = "/proc/meminfo";
  ProcMemInfo info;
  for (const Line& line : splitLines(text)) {
    std::string_view body = trim(line.text);
    if (body.empty()) continue;
    auto colon = body.find(':');
    if (colon == std::string_view::npos) return lineError(kWhat, line, "expected 'Key: value kB'");
    std::string_view key = trim(body.substr(0, colon));
    std::string_view value = trim(body.substr(colon + 1));
    if (key.empty()) return lineError(kWhat, line, "empty key");
    if (value.size() >= 2 && value.substr(value.size() - 2) == "kB") value = trim(value.substr(0, value.size() - 2));
    auto number = parseU64(value);
    if (!number) return lineError(kWhat, line, "non-numeric value");
    info.kibibytes[std::string(key)] = *number;
  }
  auto kib = [&](std::string_view key) -> std::optional<uint64_t> {
    auto it = info.kibibytes.find(std::string(key));
    if (it == info.kibibytes.end()) return std::nullopt;
    return saturatingMul(it->second, 1024);
  };
  auto total = kib("MemTotal");
  auto free = kib("MemFree");
  if (!total) return Error("/proc/meminfo: missing required line 'MemTotal:'");
  if (!free) return Error("/proc/meminfo: missing required line 'MemFree:'");
  if (*total == 0) return Error("/proc/meminfo: MemTotal is 0");
  info.memTotalBytes = *total;
  info.memFreeBytes = *free;
  if (auto available = kib("MemAvailable")) {
    info.memAvailableBytes = *available;
  } else {
    info.memAvailableEstimated = true;
    info.memAvailableBytes =
        std::min(*total, saturatingAdd(*free, saturatingAdd(kib("Buffers").value_or(0), kib("Cached").value_or(0))));
  }
  info.swapTotalBytes = kib("SwapTotal").value_or(0);
  info.swapFreeBytes = kib("SwapFree").value_or(0);
  return info;
}

bool ProcVmStat::has(std::string_view name) const { return values.find(std::string(name)) != values.end(); }

uint64_t ProcVmStat::get(std::string_view name) const {
  auto it = values.find(std::string(name));
  return it == values.end() ? 0 : it->second;
}

Result<ProcVmStat> parseProcVmStat(std::string_view text) {
  static constexpr std::string_view kWhat = "/proc/vmstat";
  ProcVmStat out;
  for (const Line& line : splitLines(text)) {
    std::string_view body = trim(line.text);
    if (body.empty()) continue;
    auto space = body.find_first_of(" \t");
    if (space == std::string_view::npos) return lineError(kWhat, line, "expected 'name value'");
    std::string_view name = body.substr(0, space);
    auto number = parseU64(trim(body.substr(space + 1)));
    if (!number) return lineError(kWhat, line, "non-numeric value");
    out.values[std::string(name)] = *number;
  }
  for (std::string_view required : {std::string_view("pswpin"), std::string_view("pswpout")}) {
    if (!out.has(required)) return Error("/proc/vmstat: missing required counter '" + std::string(required) + "'");
  }
  return out;
}

Result<PressureStall> parsePressure(std::string_view text) {
  static constexpr std::string_view kWhat = "pressure";
  PressureStall out;
  bool sawSome = false;
  for (const Line& line : splitLines(text)) {
    std::string_view body = trim(line.text);
    if (body.empty()) continue;
    auto space = body.find(' ');
    if (space == std::string_view::npos) return lineError(kWhat, line, "expected 'some|full avg10=.. avg60=.. avg300=.. total=..'");
    std::string_view kind = body.substr(0, space);
    if (kind != "some" && kind != "full") return lineError(kWhat, line, "line must start with 'some' or 'full'");

    PsiLine psi;
    bool got10 = false, got60 = false, got300 = false, gotTotal = false;
    std::string_view rest = trim(body.substr(space + 1));
    while (!rest.empty()) {
      auto end = rest.find(' ');
      std::string_view field = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : trim(rest.substr(end + 1));
      auto eq = field.find('=');
      if (eq == std::string_view::npos) return lineError(kWhat, line, "expected key=value fields");
      std::string_view key = field.substr(0, eq);
      std::string_view value = field.substr(eq + 1);
      if (key == "total") {
        auto v = parseU64(value);
        if (!v) return lineError(kWhat, line, "non-numeric total");
        psi.totalMicros = *v;
        gotTotal = true;
        continue;
      }
      auto v = parseDouble(value);
      if (!v || *v < 0) return lineError(kWhat, line, "non-numeric " + std::string(key));
      if (key == "avg10") {
        psi.avg10 = *v;
        got10 = true;
      } else if (key == "avg60") {
        psi.avg60 = *v;
        got60 = true;
      } else if (key == "avg300") {
        psi.avg300 = *v;
        got300 = true;
      }
      // Unknown fields are tolerated: the kernel may add more.
    }
    if (!(got10 && got60 && got300 && gotTotal)) {
      return lineError(kWhat, line, "missing one of avg10, avg60, avg300, total");
    }
    if (kind == "some") {
      out.some = psi;
      sawSome = true;
    } else {
      out.full = psi;
    }
  }
  if (!sawSome) return Error("pressure: missing the 'some' line");
  return out;
}

// ---------------------------------------------------------------------------------------
// Converters
// ---------------------------------------------------------------------------------------

MemorySample memorySampleFromVmStat(const VmStatSnapshot& snap, WallTime wallAt, SteadyTime steadyAt,
                                    std::optional<uint64_t> totalBytesHint) {
  MemorySample s;
  s.wallAt = wallAt;
  s.steadyAt = steadyAt;
  s.pageSizeBytes = snap.pageSize;
  const uint64_t page = snap.pageSize;
  uint64_t queuePages = 0;
  for (uint64_t v : {snap.free(), snap.active(), snap.inactive(), snap.speculative(), snap.throttled(), snap.wired(),
                     snap.compressorOccupied()}) {
    queuePages = saturatingAdd(queuePages, v);
  }
  s.totalBytes = totalBytesHint.value_or(saturatingMul(queuePages, page));
  s.freeBytes = saturatingMul(snap.free(), page);
  uint64_t availablePages = 0;
  for (uint64_t v : {snap.free(), snap.speculative(), snap.inactive(), snap.purgeable()}) {
    availablePages = saturatingAdd(availablePages, v);
  }
  s.availableBytes = std::min(saturatingMul(availablePages, page), s.totalBytes);
  if (snap.hasSwapCounters()) {
    s.swapins = snap.swapins();
    s.swapouts = snap.swapouts();
  }
  s.source = "vm_stat";
  return s;
}

MemorySample memorySampleFromLinux(const ProcMemInfo& meminfo, const ProcVmStat* vmstat,
                                   const PressureStall* pressure, uint64_t pageSizeBytes, WallTime wallAt,
                                   SteadyTime steadyAt) {
  MemorySample s;
  s.wallAt = wallAt;
  s.steadyAt = steadyAt;
  s.totalBytes = meminfo.memTotalBytes;
  s.availableBytes = std::min(meminfo.memAvailableBytes, meminfo.memTotalBytes);
  s.freeBytes = meminfo.memFreeBytes;
  s.pageSizeBytes = pageSizeBytes;
  if (vmstat != nullptr) {
    s.swapins = vmstat->pswpin();
    s.swapouts = vmstat->pswpout();
  }
  if (pressure != nullptr) {
    s.psiSomeAvg10 = pressure->some.avg10;
    if (pressure->full) s.psiFullAvg10 = pressure->full->avg10;
  }
  s.source = "linux_proc";
  return s;
}

}  // namespace oasis
