#include "common/runner_classify.h"

namespace oasis {
namespace {

std::string_view baseName(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view trimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view toString(RunnerKind kind) {
  switch (kind) {
    case RunnerKind::OllamaRunner: return "ollama runner";
    case RunnerKind::LlamaServer: return "llama-server";
    case RunnerKind::OllamaLlamaServer: return "ollama_llama_server";
    case RunnerKind::FakeOllamaRunner: return "fake-ollama runner";
    case RunnerKind::Other: return "other";
  }
  return "other";
}

std::optional<RunnerClass> classifyRunner(const std::vector<std::string>& argv, std::string_view exe) {
  std::optional<std::string> model;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--model") {
      model = i + 1 < argv.size() ? argv[i + 1] : std::string();
      break;
    }
    if (a.rfind("--model=", 0) == 0) {
      model = a.substr(std::string_view("--model=").size());
      break;
    }
  }
  if (!model) return std::nullopt;

  RunnerClass out;
  out.model = *model;
  std::string_view program = baseName(!argv.empty() && !argv[0].empty() ? std::string_view(argv[0]) : exe);
  const bool subcommandRunner = argv.size() > 1 && argv[1] == "runner";
  if ((program == "ollama" || program == "ollama.exe") && subcommandRunner) {
    out.kind = RunnerKind::OllamaRunner;
  } else if (program == "llama-server" || program == "llama-server.exe") {
    out.kind = RunnerKind::LlamaServer;
  } else if (program == "ollama_llama_server" || program == "ollama_llama_server.exe") {
    out.kind = RunnerKind::OllamaLlamaServer;
  } else if (program == "fake-ollama" && subcommandRunner) {
    out.kind = RunnerKind::FakeOllamaRunner;
  } else {
    out.kind = RunnerKind::Other;
  }
  return out;
}

std::string_view toString(FlashAttention fa) {
  switch (fa) {
    case FlashAttention::Unset: return "unset";
    case FlashAttention::On: return "on";
    case FlashAttention::Off: return "off";
    case FlashAttention::Auto: return "auto";
    case FlashAttention::Unknown: return "unknown";
  }
  return "unknown";
}

std::optional<bool> goParseBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") return false;
  return std::nullopt;
}

FlashAttention flashAttentionFromEnvValue(const std::optional<std::string>& value) {
  if (!value) return FlashAttention::Unset;
  // envconfig.Var: strings.Trim(strings.TrimSpace(os.Getenv(key)), "\"'")
  std::string_view v = trimSpaces(*value);
  while (!v.empty() && (v.front() == '"' || v.front() == '\'')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == '\'')) v.remove_suffix(1);
  if (v.empty()) return FlashAttention::Unset;
  auto parsed = goParseBool(v);
  if (!parsed) return FlashAttention::On;  // BoolWithDefault: a parse error returns true
  return *parsed ? FlashAttention::On : FlashAttention::Off;
}

FlashAttention flashAttentionFromEnv(const std::map<std::string, std::string>& env) {
  auto it = env.find("OLLAMA_FLASH_ATTENTION");
  return flashAttentionFromEnvValue(it == env.end() ? std::nullopt : std::optional<std::string>(it->second));
}

FlashAttention flashAttentionFromArgv(const std::vector<std::string>& argv) {
  auto fromValue = [](std::string_view v) {
    if (v == "on" || v == "true" || v == "1" || v == "enabled") return FlashAttention::On;
    if (v == "off" || v == "false" || v == "0" || v == "disabled") return FlashAttention::Off;
    if (v == "auto") return FlashAttention::Auto;
    return FlashAttention::Unknown;
  };
  for (std::size_t i = 1; i < argv.size(); ++i) {
    std::string_view a = argv[i];
    if (a.rfind("--flash-attn=", 0) == 0) return fromValue(a.substr(std::string_view("--flash-attn=").size()));
    if (a == "--flash-attn" || a == "-fa") {
      if (i + 1 >= argv.size() || (!argv[i + 1].empty() && argv[i + 1][0] == '-')) return FlashAttention::On;
      return fromValue(argv[i + 1]);
    }
  }
  return FlashAttention::Unset;
}

double cpuPercent(double cpuSecondsBefore, SteadyTime before, double cpuSecondsAfter, SteadyTime after) {
  const double wall = std::chrono::duration<double>(after - before).count();
  const double cpu = cpuSecondsAfter - cpuSecondsBefore;
  if (!(wall > 0) || !(cpu >= 0)) return 0;
  return 100.0 * cpu / wall;
}

}  // namespace oasis
