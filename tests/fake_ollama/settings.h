#pragma once
// fake-ollama serve's environment, parsed the way Ollama's envconfig does (ollama-behaviour.md §7).
#include <optional>
#include <string>

#include "common/http.h"
#include "common/ollama_duration.h"
#include "common/result.h"

namespace fake_ollama {

inline constexpr const char* kVersion = "0.33.0-fake";

struct ServeSettings {
  oasis::http::Endpoint listen = oasis::http::Endpoint::tcp("127.0.0.1", 11434);
  oasis::ollama::Duration keepAlive = oasis::ollama::kDefaultKeepAlive;
  // Runners get --flash-attn on|off. OLLAMA_FLASH_ATTENTION is envconfig.BoolWithDefault: unset
  // takes the caller's default, set-but-unparseable ("on", "off", "no") is TRUE. The contract
  // picks "unset => true" (era C passes `auto`, which enables FA wherever supported; the
  // incident's Apple Silicon machine had it on), so only a ParseBool-false value turns it off.
  bool flashAttention = true;
  std::string flashAttentionRaw;  // as given, for the startup log line
  int numParallel = 1;
  std::string catalogPath;  // FAKE_OLLAMA_MODELS
  std::string initialFaults;  // FAKE_OLLAMA_FAULTS (JSON text or @path)
};

// Reads OLLAMA_HOST, OLLAMA_KEEP_ALIVE, OLLAMA_FLASH_ATTENTION, OLLAMA_NUM_PARALLEL,
// FAKE_OLLAMA_MODELS, FAKE_OLLAMA_FAULTS.
oasis::Result<ServeSettings> settingsFromEnvironment();

}  // namespace fake_ollama
