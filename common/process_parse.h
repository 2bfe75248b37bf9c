#pragma once
// Pure parsers for process-table data: Linux /proc text and the macOS KERN_PROCARGS2
// buffer. Kept free of I/O so both platforms' formats are unit-tested on any host
// (daemon/platform/linux.cpp and darwin.cpp do the reading).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace oasis {

// /proc/<pid>/stat. `comm` is parenthesised and may contain spaces and ')', so the fields
// after it are parsed from the LAST ')' (platform-facts §4).
struct ProcStat {
  int pid = 0;
  std::string comm;
  char state = '?';  // R S D Z T t X I ...
  int ppid = 0;
  int pgrp = 0;
  int session = 0;
  uint64_t utimeTicks = 0;      // field 14, clock ticks
  uint64_t stimeTicks = 0;      // field 15
  uint64_t startTimeTicks = 0;  // field 22, ticks since boot: with pid, the identity tuple
  uint64_t vsizeBytes = 0;      // field 23
  int64_t rssPages = 0;         // field 24
};
Result<ProcStat> parseProcStat(std::string_view text);

// NUL-separated strings (/proc/<pid>/cmdline, /proc/<pid>/environ). A trailing NUL does
// not make an extra empty element; empty input gives no elements (a zombie's cmdline).
std::vector<std::string> splitNulSeparated(std::string_view data);

// "KEY=VALUE" entries -> map. Entries without '=' are skipped; for a repeated key the FIRST
// wins, as Go's os.Getenv sees it (ollama serve is a Go program).
std::map<std::string, std::string> parseEnvironEntries(const std::vector<std::string>& entries);

// One row of /proc/net/tcp or /proc/net/tcp6.
struct ProcNetTcpEntry {
  uint16_t localPort = 0;
  int state = 0;  // 0x0A = LISTEN
  uint64_t inode = 0;
};
inline constexpr int kTcpStateListen = 0x0A;
// Skips the header line; errors name the malformed line.
Result<std::vector<ProcNetTcpEntry>> parseProcNetTcp(std::string_view text);

// sysctl {CTL_KERN, KERN_PROCARGS2, pid} buffer (platform-facts §3): native-endian int argc,
// the exec path NUL-terminated and NUL-padded, argc NUL-terminated argv strings, then the
// environment strings (absent when the kernel withholds them). The environment ends at the
// first empty string or the end of the buffer; only KEY=VALUE strings are kept.
struct ProcArgs {
  std::string execPath;
  std::vector<std::string> argv;
  std::vector<std::string> env;
};
Result<ProcArgs> parseProcArgs2(std::string_view buffer);

}  // namespace oasis
