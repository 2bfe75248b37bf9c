#include "common/runner_classify.h"
#include "tests/fake_ollama/settings.h"

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace fake_ollama {

namespace {

// envconfig.Var(): trims spaces, then quotes.
std::string envVar(const char* name) {
  const char* raw = std::getenv(name);
  if (!raw) return {};
  std::string_view v = raw;
  auto isSpace = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!v.empty() && isSpace(v.front())) v.remove_prefix(1);
  while (!v.empty() && isSpace(v.back())) v.remove_suffix(1);
  while (!v.empty() && (v.front() == '"' || v.front() == '\'')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == '\'')) v.remove_suffix(1);
  return std::string(v);
}

}  // namespace

oasis::Result<ServeSettings> settingsFromEnvironment() {
  ServeSettings s;
  if (auto host = envVar("OLLAMA_HOST"); !host.empty()) {
    auto ep = oasis::http::Endpoint::parse(host);
    if (!ep) return oasis::Error("OLLAMA_HOST: " + ep.error().message);
    if (ep->kind != oasis::http::Endpoint::Kind::Tcp) return oasis::Error("OLLAMA_HOST must be a TCP address");
    s.listen = *ep;
  }
  const char* keep = std::getenv("OLLAMA_KEEP_ALIVE");
  s.keepAlive = oasis::ollama::keepAliveFromEnv(keep);
  s.flashAttentionRaw = envVar("OLLAMA_FLASH_ATTENTION");
  if (!s.flashAttentionRaw.empty()) {
    // BoolWithDefault: an unparseable value is true (ollama-behaviour.md §7).
    s.flashAttention = oasis::goParseBool(s.flashAttentionRaw).value_or(true);
  }
  if (auto np = envVar("OLLAMA_NUM_PARALLEL"); !np.empty()) {
    // envconfig.Uint: invalid -> default with a warning
    char* end = nullptr;
    long v = std::strtol(np.c_str(), &end, 10);
    if (end && *end == '\0' && v > 0 && v <= 64)
      s.numParallel = static_cast<int>(v);
    else
      spdlog::warn("invalid OLLAMA_NUM_PARALLEL={}, using 1", np);
  }
  s.catalogPath = envVar("FAKE_OLLAMA_MODELS");
  if (const char* f = std::getenv("FAKE_OLLAMA_FAULTS")) s.initialFaults = f;
  return s;
}

}  // namespace fake_ollama
