#pragma once
// Flash-attention launch policy (incident Bug 3: on some Apple Silicon Metal builds flash
// attention silently runs Gemma's compute graph on the CPU while `ollama ps` says 100% GPU;
// ollama#15368, #15634; the 3-5x speedup with OLLAMA_FLASH_ATTENTION=0 is ollama#15350).
//
// Ollama reads OLLAMA_FLASH_ATTENTION with envconfig.Bool: trim spaces and quotes, empty =
// unset, then Go's strconv.ParseBool - and ANY value it cannot parse ("off", "no",
// "disabled") counts as TRUE. So oasisd always writes exactly "0" or "1".
//
// Managed mode: decideLaunchEnv() says what to put in serve's environment.
// Attach mode: evaluateAttached() judges what the running server uses (its environment and
// the runner's --flash-attn argument) -> ok / warn / refuse.
#include "common/result.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oasis::policy {

enum class FlashAttentionMode { Auto, Off, On, Leave };  // ollama.flash_attention
std::string_view toString(FlashAttentionMode mode);      // "auto", "off", "on", "leave"
std::optional<FlashAttentionMode> parseFlashAttentionMode(std::string_view text);

// What a server actually uses; the status API's "flash_attention": "on|off|unset|unknown".
enum class FlashAttentionSetting { On, Off, Unset, Unknown };
std::string_view toString(FlashAttentionSetting setting);

// Ollama's envconfig.Bool: nullopt when unset/empty, else ParseBool with "not a boolean" ->
// true. `raw` nullopt = the variable is absent.
std::optional<bool> parseOllamaBool(std::optional<std::string_view> raw);
FlashAttentionSetting settingFromEnv(std::optional<std::string_view> raw);

// ---- Versions ("0.20.4", "v0.33.0-rc2", "0.5.1-rc0-4-gabc123", "0.12.0+build") ------------

struct Version {
  std::vector<std::uint64_t> numbers;  // major, minor, patch, ... (missing parts compare as 0)
  std::string prerelease;              // after '-': sorts before the release; "" = release
  std::string text;                    // as given
};

Result<Version> parseVersion(std::string_view text);
// <0, 0, >0. Prereleases compare by natural order of their dot/dash-separated identifiers
// with digit runs compared as numbers ("rc2" < "rc10").
int compareVersions(const Version& a, const Version& b);
Result<int> compareVersions(std::string_view a, std::string_view b);

// ---- Policy --------------------------------------------------------------------------------

struct FlashAttentionInputs {
  FlashAttentionMode mode = FlashAttentionMode::Auto;
  std::optional<std::string> fixedIn;        // ollama.flash_attention_fixed_in; null = never fixed
  std::optional<std::string> serverVersion;  // detected (`ollama --version`, /api/version)
  bool isAppleSilicon = false;
  std::optional<std::string> inheritedEnv;   // OLLAMA_FLASH_ATTENTION in oasisd's own env
};

// Does the policy want flash attention off (for auto: Apple Silicon and not known fixed)?
// `why` gets the human reason.
bool wantFlashAttentionOff(const FlashAttentionInputs& in, std::string& why);

struct LaunchEnvDecision {
  std::optional<std::string> value;  // set OLLAMA_FLASH_ATTENTION to this ("0"/"1"); nullopt = untouched
  FlashAttentionSetting effective = FlashAttentionSetting::Unknown;  // what serve will see
  std::string reason;
};
LaunchEnvDecision decideLaunchEnv(const FlashAttentionInputs& in);

enum class Verdict { Ok, Warn, Refuse };
std::string_view toString(Verdict verdict);

struct ObservedFlashAttention {
  bool serveEnvKnown = false;            // could serve's environment be read at all?
  std::optional<std::string> serveEnv;   // OLLAMA_FLASH_ATTENTION there (nullopt = not set)
  // The runner's --flash-attn argument: "on"/"off"/"auto" (era C), "" for the bare boolean
  // flag of era B; nullopt = no runner seen.
  std::optional<std::string> runnerArg;
};

struct AttachCheck {
  Verdict verdict = Verdict::Ok;
  FlashAttentionSetting observed = FlashAttentionSetting::Unknown;
  std::string message;
};
// The runner argument, when known, wins over the environment. Policy: mode off + observed
// on/unset -> refuse; mode auto + observed on/unset where off is wanted -> warn (oasisd cannot
// relaunch a server it does not own); unknown -> warn; leave -> ok.
AttachCheck evaluateAttached(const FlashAttentionInputs& in, const ObservedFlashAttention& observed);

}  // namespace oasis::policy
