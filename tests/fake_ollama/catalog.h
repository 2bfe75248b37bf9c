#pragma once
// The models fake-ollama "has pulled": the default catalog (contract: gemma4:e4b and tiny:latest)
// or a JSON file named by FAKE_OLLAMA_MODELS.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace fake_ollama {

struct ModelSpec {
  std::string name;  // normalised "name:tag", what /api/ps and /api/tags show
  int64_t size = 0;  // bytes; /api/ps size, and size_vram = size * vram_fraction
  std::string digest;  // 64 hex chars, no "sha256:" prefix (ollama-behaviour.md §1)
  std::string family = "llama";
  std::string parameterSize = "1B";
  std::string quantizationLevel = "Q4_K_M";
  std::string format = "gguf";
  int contextLength = 4096;
  int loadMs = 300;
  double tokensPerSecond = 200;
  int numPredict = 16;  // tokens produced when the request does not set options.num_predict
  double vramFraction = 1.0;
  oasis::WallTime modifiedAt{};

  int64_t sizeVram() const;
};

// Ollama's model.ParseName(...).DisplayShortest() for the simple names we use: lower-cases,
// drops "registry.ollama.ai/library/" and adds ":latest" when no tag is given. Empty or
// malformed names give "".
std::string normaliseModelName(std::string_view name);

class Catalog {
 public:
  static Catalog defaults();
  // {"models":[{...}]} or a bare array; keys: name, size, digest, family, parameter_size,
  // quantization_level, context_length, load_ms, tokens_per_s, num_predict, vram_fraction.
  static oasis::Result<Catalog> fromJsonFile(const std::string& path);
  static oasis::Result<Catalog> fromJsonText(std::string_view text);

  const ModelSpec* find(std::string_view name) const;
  const std::vector<ModelSpec>& models() const { return models_; }

 private:
  std::vector<ModelSpec> models_;
};

// A deterministic 64-hex-char digest derived from the model name (stable across runs).
std::string digestFor(std::string_view name);

}  // namespace fake_ollama
