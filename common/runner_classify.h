#pragma once
// Pure helpers for the runner table: which processes are model runners, what flash-attention
// setting they run with, and CPU% from two samples.
//
// A runner is a DIRECT CHILD of `ollama serve` whose command line has `--model`
// (ollama-behaviour §4: transient discovery processes — `ollama runner --ollama-engine
// --port N`, `llama-server --list-devices` — have no `--model` and must never be mistaken
// for, or killed as, a model runner).
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <map>

#include "common/clock.h"

namespace oasis {

enum class RunnerKind {
  OllamaRunner,       // era B and MLX: `ollama runner [--ollama-engine|--mlx-engine] --model ...`
  LlamaServer,        // era C: upstream llama.cpp `llama-server --model <blob> ...`
  OllamaLlamaServer,  // era A (<= v0.5.1): `ollama_llama_server --model ...`
  FakeOllamaRunner,   // tests: `fake-ollama runner --model <name> --port N --flash-attn on|off`
  Other,              // has --model but an unrecognised program: still a runner by the rule above
};
std::string_view toString(RunnerKind kind);

struct RunnerClass {
  RunnerKind kind = RunnerKind::Other;
  std::string model;  // the --model value (a blob path for llama-server, a name for MLX/fake)
};

// nullopt when argv has no `--model` (or `--model=`): not a model runner. `exe` (the
// resolved executable path) is used when argv[0] is empty; argv[0] is preferred because it
// is what distinguishes `ollama runner` from `ollama serve` anyway.
std::optional<RunnerClass> classifyRunner(const std::vector<std::string>& argv, std::string_view exe = {});

// The full rule: direct child of serve and classifyRunner() says yes.
inline bool isRunnerOf(int ppid, int servePid, const std::vector<std::string>& argv) {
  return servePid > 0 && ppid == servePid && classifyRunner(argv).has_value();
}

// What a process runs with. `Unset` = nothing says (Ollama then picks per model/GPU).
enum class FlashAttention { Unset, On, Off, Auto, Unknown };
// "unset", "on", "off", "auto", "unknown" — the control API's `flash_attention` values.
std::string_view toString(FlashAttention fa);

// Go's strconv.ParseBool: 1 t T TRUE true True -> true; 0 f F FALSE false False -> false;
// anything else -> nullopt.
std::optional<bool> goParseBool(std::string_view s);

// OLLAMA_FLASH_ATTENTION as Ollama reads it (envconfig.BoolWithDefault over envconfig.Var,
// which trims spaces and then quotes): unset or empty -> Unset; a ParseBool value -> On/Off;
// ANY other value ("off", "no", "disabled") -> On. That last rule is why the incident's
// users who wrote OLLAMA_FLASH_ATTENTION=off still ran with flash attention.
FlashAttention flashAttentionFromEnvValue(const std::optional<std::string>& value);
FlashAttention flashAttentionFromEnv(const std::map<std::string, std::string>& env);

// From a runner's argv: `--flash-attn on|off|auto` (era C, fake-ollama), `--flash-attn=X`,
// `-fa X`; a bare `--flash-attn`/`-fa` (older llama.cpp boolean flag) -> On; absent -> Unset;
// an unrecognised value -> Unknown.
FlashAttention flashAttentionFromArgv(const std::vector<std::string>& argv);

// CPU% between two samples of a process's cumulative CPU seconds (user+sys): 100 = one
// core fully busy, multi-threaded runners exceed 100. 0 when time did not advance or the
// counter went backwards (PID reuse, which the identity check should catch first).
double cpuPercent(double cpuSecondsBefore, SteadyTime before, double cpuSecondsAfter, SteadyTime after);

}  // namespace oasis
