#pragma once
// What serve and its runner child say to each other. Loosely llama-server's shape (era C,
// ollama-behaviour.md §4): GET /health answers {"status":"ok"} once loaded and 503 while
// loading; POST /completion streams one JSON object per line, the last one with "stop":true
// and a "timings" object in milliseconds. Faults travel with each completion request.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/fake_ollama/faults.h"

namespace fake_ollama {

struct CompletionRequest {
  int promptTokens = 1;
  int numPredict = 16;
  bool stopsNaturally = true;  // model emits EOS after numPredict tokens -> "stop"; else "length"
  double tokensPerSecond = 200;
  GenerationFaults faults;

  nlohmann::json toJson() const {
    return {{"prompt_tokens", promptTokens},
            {"n_predict", numPredict},
            {"natural_stop", stopsNaturally},
            {"tokens_per_s", tokensPerSecond},
            {"faults", faults.toJson()}};
  }
  static CompletionRequest fromJson(const nlohmann::json& j) {
    CompletionRequest r;
    r.promptTokens = j.value("prompt_tokens", 1);
    r.numPredict = j.value("n_predict", 16);
    r.stopsNaturally = j.value("natural_stop", true);
    r.tokensPerSecond = j.value("tokens_per_s", 200.0);
    if (j.contains("faults")) r.faults = GenerationFaults::fromJson(j["faults"]);
    return r;
  }
};

// The token text the fake model "generates": a fixed, recognisable sentence, cycled.
inline std::string tokenText(int index) {
  static const std::vector<std::string> words = {
      "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".",
      " Fake", " Ollama", " says", " hello", " from", " the", " runner", "."};
  return words[static_cast<std::size_t>(index) % words.size()];
}

}  // namespace fake_ollama
