#pragma once
// Parsers for the memory signals oasisd samples, and the platform-neutral MemorySample the
// memory policy consumes. Pure text -> struct functions: no I/O, so every format quirk is
// pinned by a fixture (tests/fixtures/vm_stat, reference/platform-facts.md §1 and §4).
//
// Why these signals: in the incident the gradient mattered more than the snapshot — "pages
// free dropped two orders of magnitude and swapouts went from 0 to 500,000 in fifteen
// minutes" before generation stalled behind disk I/O. So a sample carries both levels (free,
// available) and cumulative counters (swap-outs) from which the policy derives rates.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"

namespace oasis {

// ---------------------------------------------------------------------------------------
// macOS `vm_stat` (snapshot mode, no arguments)
// ---------------------------------------------------------------------------------------

// One `vm_stat` snapshot. `values` is keyed by the label without its colon and without the
// double quotes of `"Translation faults"`, e.g. "Pages free", "Translation faults",
// "Swapouts". Values are as printed: page counts (gauges) or cumulative counters, in units
// of `pageSize` where they count pages. Unknown labels (e.g. the MTE lines of
// system_cmds 1042) are kept too.
struct VmStatSnapshot {
  uint64_t pageSize = 0;
  std::map<std::string, uint64_t> values;

  bool has(std::string_view label) const;
  // The value of a label, 0 when absent (see has()).
  uint64_t get(std::string_view label) const;

  // "Pages free" is free_count - speculative_count (platform-facts §1.1): it excludes the
  // speculative pages that host_statistics64's free_count includes.
  uint64_t free() const { return get("Pages free"); }
  uint64_t active() const { return get("Pages active"); }
  uint64_t inactive() const { return get("Pages inactive"); }
  uint64_t speculative() const { return get("Pages speculative"); }
  uint64_t throttled() const { return get("Pages throttled"); }
  uint64_t wired() const { return get("Pages wired down"); }
  uint64_t purgeable() const { return get("Pages purgeable"); }
  uint64_t fileBacked() const { return get("File-backed pages"); }
  uint64_t anonymous() const { return get("Anonymous pages"); }
  uint64_t compressorOccupied() const { return get("Pages occupied by compressor"); }
  uint64_t storedInCompressor() const { return get("Pages stored in compressor"); }
  uint64_t translationFaults() const { return get("Translation faults"); }
  uint64_t pageins() const { return get("Pageins"); }
  uint64_t pageouts() const { return get("Pageouts"); }
  // Absent before OS X 10.9 (system_cmds 597): check hasSwapCounters().
  uint64_t swapins() const { return get("Swapins"); }
  uint64_t swapouts() const { return get("Swapouts"); }
  bool hasSwapCounters() const { return has("Swapins") && has("Swapouts"); }
};

// Parses snapshot-mode `vm_stat` output. Accepts both the 48-column (`%-30s %16llu.`) and the
// 53-column (`%-35s %16llu.`) layouts and the OS X <= 10.8 one (`%-25s`, trailing
// `Object cache: N hits of M lookups (P% hit rate)` line), 4 KiB and 16 KiB pages, extra
// unknown labels, CRLF line ends and blank lines. Never relies on column positions: each
// value line is split at its first ':' and the value's terminating '.' is stripped.
// Rejects, with an error naming the line (number and text): a missing or malformed
// "Mach Virtual Memory Statistics: (page size of N bytes)" header, a line without ':',
// a non-numeric value, a duplicated label, and a snapshot missing a required label
// (Pages free/active/inactive/wired down, Pageins, Pageouts).
Result<VmStatSnapshot> parseVmStat(std::string_view text);

// ---------------------------------------------------------------------------------------
// Linux /proc
// ---------------------------------------------------------------------------------------

// /proc/meminfo: `Key:   value kB` lines. `kibibytes` holds every line (values in KiB as
// printed; the few lines without a unit, e.g. HugePages_Total, are stored as printed).
struct ProcMemInfo {
  std::map<std::string, uint64_t> kibibytes;
  uint64_t memTotalBytes = 0;
  uint64_t memFreeBytes = 0;
  // MemAvailable (Linux >= 3.14). On older kernels: MemFree + Buffers + Cached, an estimate
  // that over-counts unreclaimable cache (flagged by memAvailableEstimated).
  uint64_t memAvailableBytes = 0;
  bool memAvailableEstimated = false;
  uint64_t swapTotalBytes = 0;
  uint64_t swapFreeBytes = 0;
};
// Requires MemTotal and MemFree; errors name the offending line.
Result<ProcMemInfo> parseProcMemInfo(std::string_view text);

// /proc/vmstat: `name value` per line, cumulative counters since boot.
struct ProcVmStat {
  std::map<std::string, uint64_t> values;
  bool has(std::string_view name) const;
  uint64_t get(std::string_view name) const;  // 0 when absent
  uint64_t pswpin() const { return get("pswpin"); }    // pages swapped in
  uint64_t pswpout() const { return get("pswpout"); }  // pages swapped out
  uint64_t pgmajfault() const { return get("pgmajfault"); }
  uint64_t oomKill() const { return get("oom_kill"); }
};
// Requires pswpin and pswpout (present on every kernel this daemon supports).
Result<ProcVmStat> parseProcVmStat(std::string_view text);

// /proc/pressure/memory (PSI, Linux >= 4.20):
//   some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
struct PsiLine {
  double avg10 = 0;   // % of wall time stalled over the last 10 s
  double avg60 = 0;
  double avg300 = 0;
  uint64_t totalMicros = 0;  // cumulative stall time, µs
};
struct PressureStall {
  PsiLine some;
  std::optional<PsiLine> full;  // always present for memory; optional for robustness
};
// Requires a `some` line; errors name the line.
Result<PressureStall> parsePressure(std::string_view text);

// ---------------------------------------------------------------------------------------
// Platform-neutral sample
// ---------------------------------------------------------------------------------------

// What the memory policy sees, whatever the source.
//
// Units: byte fields are bytes. `swapouts`/`swapins` are CUMULATIVE PAGE COUNTS since boot,
// in pages of `pageSizeBytes`, exactly as the OS counts them (vm_stat "Swapouts", Linux
// pswpout): the incident's "0 -> 500,000 swap-outs" is in these units. swapoutBytes()
// converts for `memory.swapout_rate_pause`, which is in bytes per second.
// They are nullopt when the source has no such counter (OS X <= 10.8 vm_stat), which is
// different from "no swapping" (0).
struct MemorySample {
  WallTime wallAt{};
  SteadyTime steadyAt{};
  uint64_t totalBytes = 0;
  uint64_t availableBytes = 0;
  uint64_t freeBytes = 0;
  uint64_t pageSizeBytes = 0;
  std::optional<uint64_t> swapouts;
  std::optional<uint64_t> swapins;
  // macOS kern.memorystatus_vm_pressure_level: 1 normal, 2 warn, 4 critical.
  std::optional<int> osPressureLevel;
  // Linux PSI memory `some avg10` / `full avg10` (percent).
  std::optional<double> psiSomeAvg10;
  std::optional<double> psiFullAvg10;
  std::string source;  // e.g. "vm_stat_command: vm_stat", "file: /tmp/x", "linux_proc", "darwin_native"

  // Cumulative swap-out/in in bytes (pages × page size), for byte-based rate thresholds.
  std::optional<uint64_t> swapoutBytes() const {
    if (!swapouts) return std::nullopt;
    return *swapouts * pageSizeBytes;
  }
  std::optional<uint64_t> swapinBytes() const {
    if (!swapins) return std::nullopt;
    return *swapins * pageSizeBytes;
  }
};

// vm_stat -> sample.
//   free      = "Pages free" × page size (free_count − speculative: the incident's 228 MB).
//   available = (free + speculative + inactive + purgeable) × page size, capped at total.
//     Why: speculative pages are read-ahead cache the kernel already counts as free
//     (vm_statistics.h: "speculative pages are already accounted for in free_count");
//     inactive pages are next in line for reclaim (file-backed ones are dropped, anonymous
//     ones compressed — no disk I/O); purgeable pages are discarded without any I/O
//     (Activity Monitor files them with "Cached Files", platform-facts §2.6). Active,
//     wired and compressor pages are excluded — that is exactly why kern.memorystatus_level
//     (which counts active) "stays high under pressure" (§2.2). Purgeable pages can also sit
//     on the inactive queue, so this may double-count a little; purgeable is small in
//     every capture (0.1–1.2 % of RAM), and the free-page gradient, swap-out rate and OS
//     level catch what a slightly optimistic level misses.
//   total     = `totalBytesHint` when given (hw.memsize), else the sum of the page queues
//     (free+active+inactive+speculative+throttled+wired+compressor-occupied) × page size,
//     which undercounts physical RAM by a few percent (boot carve-outs).
MemorySample memorySampleFromVmStat(const VmStatSnapshot& snapshot, WallTime wallAt, SteadyTime steadyAt,
                                    std::optional<uint64_t> totalBytesHint = std::nullopt);

// Linux trio -> sample. `vmstat` and `pressure` are optional (PSI may be compiled out or
// disabled with psi=0). `pageSizeBytes` is the unit of pswpin/pswpout (sysconf(_SC_PAGESIZE)).
MemorySample memorySampleFromLinux(const ProcMemInfo& meminfo, const ProcVmStat* vmstat,
                                   const PressureStall* pressure, uint64_t pageSizeBytes, WallTime wallAt,
                                   SteadyTime steadyAt);

}  // namespace oasis
