#include "common/process_parse.h"

#include <charconv>
#include <cstring>

namespace oasis {
namespace {

template <typename T>
bool parseNumber(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && ptr == s.data() + s.size();
}

std::vector<std::string_view> splitWhitespace(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    std::size_t start = i;
    while (i < s.size() && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

std::string shortQuote(std::string_view s) {
  constexpr std::size_t kMax = 100;
  std::string out(s.substr(0, kMax));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return "'" + out + (s.size() > kMax ? "...'" : "'");
}

}  // namespace

Result<ProcStat> parseProcStat(std::string_view text) {
  ProcStat st;
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return Error("/proc/<pid>/stat: no '(comm)' in " + shortQuote(text));
  }
  std::string_view pidText = text.substr(0, open);
  while (!pidText.empty() && pidText.back() == ' ') pidText.remove_suffix(1);
  if (!parseNumber(pidText, st.pid)) return Error("/proc/<pid>/stat: bad pid in " + shortQuote(text));
  st.comm = std::string(text.substr(open + 1, close - open - 1));

  // Fields from 3 (state) on; index 0 here is field 3.
  auto fields = splitWhitespace(text.substr(close + 1));
  constexpr std::size_t kNeeded = 22;  // through field 24 (rss)
  if (fields.size() < kNeeded) {
    return Error("/proc/<pid>/stat: " + std::to_string(fields.size() + 2) + " fields, expected at least 24");
  }
  auto field = [&](int number) { return fields[static_cast<std::size_t>(number - 3)]; };
  if (field(3).size() != 1) return Error("/proc/<pid>/stat: bad state field " + shortQuote(field(3)));
  st.state = field(3)[0];
  bool good = parseNumber(field(4), st.ppid) && parseNumber(field(5), st.pgrp) && parseNumber(field(6), st.session) &&
              parseNumber(field(14), st.utimeTicks) && parseNumber(field(15), st.stimeTicks) &&
              parseNumber(field(22), st.startTimeTicks) && parseNumber(field(23), st.vsizeBytes) &&
              parseNumber(field(24), st.rssPages);
  if (!good) return Error("/proc/<pid>/stat: non-numeric field in " + shortQuote(text));
  return st;
}

std::vector<std::string> splitNulSeparated(std::string_view data) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < data.size()) {
    auto nul = data.find('\0', i);
    if (nul == std::string_view::npos) nul = data.size();
    out.emplace_back(data.substr(i, nul - i));
    i = nul + 1;
  }
  return out;
}

std::map<std::string, std::string> parseEnvironEntries(const std::vector<std::string>& entries) {
  std::map<std::string, std::string> env;
  for (const auto& entry : entries) {
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));  // emplace keeps the first
  }
  return env;
}

Result<std::vector<ProcNetTcpEntry>> parseProcNetTcp(std::string_view text) {
  std::vector<ProcNetTcpEntry> out;
  std::size_t lineNumber = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++lineNumber;
    auto fields = splitWhitespace(line);
    if (fields.empty()) continue;
    if (fields[0] == "sl") continue;  // header
    auto bad = [&](std::string_view what) {
      return Error("/proc/net/tcp line " + std::to_string(lineNumber) + ": " + std::string(what) + " in " +
                   shortQuote(line));
    };
    if (fields.size() < 10) return bad("fewer than 10 fields");
    std::string_view local = fields[1];
    auto colon = local.rfind(':');
    if (colon == std::string_view::npos) return bad("no ':' in local address");
    ProcNetTcpEntry entry;
    unsigned port = 0;
    if (!parseNumber(local.substr(colon + 1), port, 16) || port > 65535) return bad("bad local port");
    entry.localPort = static_cast<uint16_t>(port);
    // Two hex digits (TCP_ESTABLISHED 01 .. TCP_NEW_SYN_RECV 0C); from_chars would also take
    // "-1" (found by tests/fuzz/fuzz_proc_parse).
    if (!parseNumber(fields[3], entry.state, 16) || entry.state < 0 || entry.state > 0xFF) return bad("bad state");
    if (!parseNumber(fields[9], entry.inode)) return bad("bad inode");
    out.push_back(entry);
  }
  return out;
}

Result<ProcArgs> parseProcArgs2(std::string_view buffer) {
  int argc = 0;
  if (buffer.size() < sizeof(argc)) return Error("KERN_PROCARGS2: buffer shorter than argc");
  std::memcpy(&argc, buffer.data(), sizeof(argc));
  if (argc < 0 || static_cast<std::size_t>(argc) > buffer.size()) {
    return Error("KERN_PROCARGS2: implausible argc " + std::to_string(argc));
  }
  std::string_view rest = buffer.substr(sizeof(argc));
  ProcArgs out;
  auto nul = rest.find('\0');
  if (nul == std::string_view::npos) return Error("KERN_PROCARGS2: unterminated exec path");
  out.execPath = std::string(rest.substr(0, nul));
  rest.remove_prefix(nul);
  // The path is NUL-padded (to pointer alignment); argv[0] starts at the next non-NUL byte.
  while (!rest.empty() && rest.front() == '\0') rest.remove_prefix(1);
  for (int i = 0; i < argc; ++i) {
    if (rest.empty()) return Error("KERN_PROCARGS2: buffer ends after " + std::to_string(i) + " of " + std::to_string(argc) + " arguments");
    nul = rest.find('\0');
    if (nul == std::string_view::npos) {
      return Error("KERN_PROCARGS2: unterminated argument " + std::to_string(i));
    }
    out.argv.emplace_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  // Environment: until the first empty string (or the end). What follows an empty string
  // (the kernel's "apple" strings, padding) is not the environment.
  while (!rest.empty()) {
    nul = rest.find('\0');
    std::string_view entry = rest.substr(0, nul);
    if (entry.empty()) break;
    if (entry.find('=') != std::string_view::npos) out.env.emplace_back(entry);
    if (nul == std::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  return out;
}

}  // namespace oasis
