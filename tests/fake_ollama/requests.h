#pragma once
// Decoding /api/generate, /api/chat and /api/show bodies with the errors Ollama gives
// (ollama-behaviour.md §5 "Errors"): Go's encoding/json messages for syntax and type errors,
// "missing request body", and api.Duration's keep_alive errors, all as HTTP 400.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ollama_duration.h"
#include "common/result.h"

namespace fake_ollama {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct InferenceRequest {
  bool chat = false;
  std::string model;
  std::string prompt;  // generate
  std::string system;  // generate
  std::vector<ChatMessage> messages;  // chat
  bool stream = true;
  std::optional<oasis::ollama::Duration> keepAlive;  // nullopt: absent (keep the runner's value)
  std::optional<long long> numPredict;  // options.num_predict
  bool hasImages = false;

  bool isEmpty() const { return chat ? messages.empty() : prompt.empty() && !hasImages; }
  int promptTokens() const;  // a rough whitespace token count, at least 1
};

// Error.code carries the HTTP status (400).
oasis::Result<InferenceRequest> decodeInference(const std::string& body, bool chat);

struct ShowRequest {
  std::string model;
  bool verbose = false;
};
oasis::Result<ShowRequest> decodeShow(const std::string& body);

}  // namespace fake_ollama
