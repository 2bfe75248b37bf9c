#pragma once
// What oasisd reads from Ollama: the /api/ps and /api/version bodies and the NDJSON chunks of a
// streamed /api/generate or /api/chat. A misbehaving server (another version, a proxy in front
// of it, a runner crash mid-line) is input like any client's, so nothing here trusts a field's
// type: a wrong type is treated as absent, and no call throws (issue 7; tests/fuzz).
#include <cstdint>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/policy/recovery_policy.h"

namespace oasis {

// GET /api/ps: {"models": [{"name", "model", "size", "size_vram", "expires_at", ...}]}.
// Entries that are not objects or have no name are skipped; a name falls back to "model".
// Sizes that are not non-negative integers (a float, a negative number) read as 0.
std::vector<policy::PsModel> parsePsModels(const nlohmann::json& body);

// GET /api/version: {"version": "0.12.3"} -> "0.12.3"; "" when absent or not a string.
std::string parseVersionBody(const nlohmann::json& body);

// The lines of one streamed generate/chat response, assembled into Ollama's non-stream answer
// (the executor always streams: token-level liveness, DESIGN.md).
class StreamAssembler {
 public:
  enum class Step {
    Skip,    // an empty line (keep-alive or CRLF noise): no token
    Chunk,   // a token chunk (done is not true)
    Done,    // the final chunk
    Failed,  // Ollama's {"error": ...} line, or a line that is not a JSON object: see error()
  };
  explicit StreamAssembler(bool chat) : chat_(chat) {}

  Step feed(std::string_view line);
  bool done() const { return final_.is_object(); }
  const std::string& error() const { return error_; }
  // The final chunk with the text (and thinking, tool calls) of every chunk put back in, the
  // shape of Ollama's stream:false answer. Meaningful once done().
  nlohmann::json response() const;

  // Statistics of the final chunk (Ollama reports durations in ns); nullopt when absent or of
  // the wrong type. evalCount is never negative.
  std::optional<double> loadDurationMs() const;
  std::optional<std::int64_t> evalCount() const;
  std::optional<double> evalDurationMs() const;
  std::optional<std::chrono::nanoseconds> evalDuration() const;

 private:
  bool chat_;
  nlohmann::json final_;  // null until the done chunk
  std::string text_, thinking_, error_;
  nlohmann::json toolCalls_ = nlohmann::json::array();
  std::string role_ = "assistant";
};

}  // namespace oasis
