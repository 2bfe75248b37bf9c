#pragma once
// oasisd configuration (contracts/config.md): JSON text with `//` comments -> plain structs ->
// validation. Every problem is reported at once, by dotted key, so `oasisd --check-config`
// lists them all; unknown keys are errors because a typo (`memory.windw_s`) must never be
// silently ignored — a mistyped threshold would leave the daemon guarding nothing.
//
// Durations are seconds as JSON numbers (fractions allowed: tests run time-compressed).
// Memory sizes named `_gb` are GiB (2^30 bytes); rates are bytes per second, so one
// threshold means the same on 4 KiB-page and 16 KiB-page machines.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace oasis {

struct ConfigProblem {
  std::string key;      // dotted path, e.g. "memory.window_s"; "" for the document itself
  std::string message;  // what is wrong, e.g. "must be > 0 (got -1)"
};

// `max_concurrency`: a positive integer or "auto" (1 on Apple Silicon — one generation at a
// time keeps the KV cache resident where the incident saw it stall — else the default 4).
struct MaxConcurrency {
  bool isAuto = false;
  int value = 4;  // meaningful when !isAuto
  int resolve(bool isAppleSilicon) const { return isAuto ? (isAppleSilicon ? 1 : kDefault) : value; }
  static constexpr int kDefault = 4;
  bool operator==(const MaxConcurrency&) const = default;
};

struct MemorySourceConfig {
  enum class Kind { Auto, VmStatCommand, File };
  Kind kind = Kind::Auto;
  std::vector<std::string> argv = {"vm_stat"};  // kind vm_stat_command
  std::string path;                             // kind file
  std::string format = "vm_stat";               // kind file; the only format so far
  double timeoutS = 5;                          // kind vm_stat_command: kill it after this
  bool operator==(const MemorySourceConfig&) const = default;
};

struct MemoryConfig {
  MemorySourceConfig source;
  double intervalS = 1;
  // Hysteresis band on available memory: pause below, resume only above (and after
  // resumeHoldS of OK samples). 2 GB / 4 GB: below 2 GB a multi-GB model's KV cache
  // starts touching swapped pages (the incident ended at 228 MB free of 51.5 GB).
  double pauseBelowAvailableGb = 2.0;
  double resumeAboveAvailableGb = 4.0;
  // Free pages falling by this factor within windowS -> critical (incident: 100x in 15 min).
  double freeDropFactor = 10;
  double windowS = 900;
  // Swap-out rate in BYTES per second (vm_stat "Swapouts" / Linux pswpout deltas × page
  // size) that counts as critical; nullopt (JSON null) disables the trigger. 4 MiB/s =
  // 256 pages/s at 16 KiB: under half the incident's average (500k swap-outs in 15 min =
  // 555 pages/s ≈ 8.7 MiB/s), yet above the occasional swap-out of a Mac with effective swap.
  std::optional<double> swapoutRatePause = 4.0 * 1024 * 1024;
  enum class OnCritical { Pause, PauseAndEvict };
  OnCritical onCritical = OnCritical::Pause;
  double resumeHoldS = 30;  // OK this long before resuming: no flapping

  static constexpr double kBytesPerGb = 1024.0 * 1024.0 * 1024.0;
  uint64_t pauseBelowAvailableBytes() const { return static_cast<uint64_t>(pauseBelowAvailableGb * kBytesPerGb); }
  uint64_t resumeAboveAvailableBytes() const { return static_cast<uint64_t>(resumeAboveAvailableGb * kBytesPerGb); }
  bool operator==(const MemoryConfig&) const = default;
};

struct RestartConfig {
  // First restart is immediate; then initialBackoffS, doubling up to maxBackoffS.
  double initialBackoffS = 1;
  double maxBackoffS = 60;
  // A serve that stayed healthy this long resets the backoff and the fast-failure count.
  double healthyResetS = 120;
  // This many consecutive failures before healthyResetS -> terminal `failed` state.
  int maxFastFailures = 5;
  bool operator==(const RestartConfig&) const = default;
};

struct OllamaConfig {
  enum class Mode { Managed, Attach };
  Mode mode = Mode::Managed;
  std::string url = "http://127.0.0.1:11434";
  std::vector<std::string> command = {"ollama", "serve"};
  std::map<std::string, std::string> env;  // added to managed serve's environment
  enum class FlashAttention { Auto, Off, On, Leave };
  FlashAttention flashAttention = FlashAttention::Auto;
  // `auto` turns flash attention off on Apple Silicon while serve's version is below this;
  // nullopt = always (no fixed release known yet).
  std::optional<std::string> flashAttentionFixedIn;
  double psTimeoutS = 5;       // /api/ps answer deadline (it blocks when the scheduler wedges)
  double healthTimeoutS = 3;   // HEAD / deadline
  int wedgeAfterPsFailures = 3;  // consecutive ps timeouts -> wedged (restart or report)
  double stopTimeoutS = 10;    // SIGTERM -> SIGKILL grace for serve (its own unload path)
  double startTimeoutS = 60;   // launched serve must answer HEAD / within this
  RestartConfig restart;
  bool operator==(const OllamaConfig&) const = default;
};

struct CpuSpillConfig {
  // Eval rate this many times below the model's own baseline while ps says 100% GPU.
  double factor = 3;
  int minSamples = 5;  // completed attempts before a baseline exists
  // Runner CPU% (100 = one core) above which the drop counts as CPU spill: a GPU-bound
  // runner idles its CPU; a spilled graph keeps several cores busy.
  double runnerCpuPct = 150;
  bool operator==(const CpuSpillConfig&) const = default;
};

struct PreflightConfig {
  // Model name -> GiB of available memory a run on it needs; "default" for the rest.
  // A config's table overlays this one key by key.
  std::map<std::string, double> minFreeGb = {{"default", 4.0}, {"gemma4:e4b", 8.0}};
  enum class Mode { Block, Warn };
  Mode mode = Mode::Block;
  double minFreeGbFor(const std::string& model) const;
  bool operator==(const PreflightConfig&) const = default;
};

struct RetryConfig {
  // Delay before re-dispatching a failed attempt: initial, doubling, capped.
  double initialBackoffS = 0.5;
  double maxBackoffS = 10;
  bool operator==(const RetryConfig&) const = default;
};

struct LogConfig {
  std::string level = "info";       // trace|debug|info|warn|error|critical|off
  std::optional<std::string> file;  // rotating file in addition to stderr
  uint64_t maxFileBytes = 10ull << 20;
  int maxFiles = 3;
  bool operator==(const LogConfig&) const = default;
};

struct SecurityConfig {
  // A peer in this group may use the socket besides the daemon's uid and root.
  // A group name or numeric gid. The socket file is then 0660 and owned by that group.
  std::optional<std::string> allowGroup;
  // Slowloris bounds on the socket and the TCP listener: once a request has begun, all of it
  // must arrive within read_timeout_s; a keep-alive connection with no request in flight is
  // closed after idle_timeout_s.
  double readTimeoutS = 30;
  double idleTimeoutS = 120;
  bool operator==(const SecurityConfig&) const = default;
};

struct TcpListenerConfig {
  bool enabled = false;
  std::string address = "127.0.0.1";  // loopback only: the API has no authentication over TCP
  int port = 11435;                    // next to Ollama's 11434; 0 = ephemeral
  bool control = false;                // also serve /v1/* control endpoints over TCP
  bool operator==(const TcpListenerConfig&) const = default;
};

struct StoreConfig {
  // Samples (memory, ps, runner) older than this are deleted; events and trials are kept.
  double sampleRetentionS = 7 * 24 * 3600.0;
  bool operator==(const StoreConfig&) const = default;
};

struct Config {
  std::optional<std::string> socketPath;    // nullopt = platform default (daemon/paths.h)
  std::optional<std::string> databasePath;  // likewise
  MaxConcurrency maxConcurrency;
  double requestTimeoutS = 60;
  double firstTokenTimeoutS = 30;
  double stallTimeoutS = 15;
  int maxAttempts = 3;
  int ollamaEvictThreshold = 3;
  double stoppingGraceS = 10;
  double psIntervalS = 2;
  double shutdownTimeoutS = 15;  // under launchd's ExitTimeOut and systemd's TimeoutStopSec (20 s)
  // Queued trials live in SQLite and the in-memory queue holds ids, so a bound of 100000
  // costs a few MB and still lets a whole evaluation (the incident ran 12,000+ trials,
  // sweeps run several) be submitted up front; past it clients get 429.
  int queueLimit = 100000;
  uint64_t maxBodyBytes = 8ull << 20;  // contract: 413 over 8 MiB by default

  OllamaConfig ollama;
  MemoryConfig memory;
  CpuSpillConfig cpuSpill;
  PreflightConfig preflight;
  RetryConfig retry;
  LogConfig log;
  SecurityConfig security;
  TcpListenerConfig tcpListener;
  StoreConfig store;

  bool operator==(const Config&) const = default;
};

struct ConfigLoad {
  Config config;  // defaults overlaid with whatever parsed; meaningful only when ok()
  std::vector<ConfigProblem> problems;
  bool ok() const { return problems.empty(); }
};

// Parses JSON (with `//` and `/* */` comments) and validates. An empty or all-whitespace
// text is the default config.
ConfigLoad parseConfig(std::string_view text);
// Reads the file, then parseConfig. A read failure is one problem with key "".
ConfigLoad loadConfigFile(const std::string& path);
// Cross-field and range checks on a config built in code (parseConfig runs them too).
std::vector<ConfigProblem> validateConfig(const Config& config);

// The effective config as JSON, every key present (defaults included), in the same shape
// the parser accepts: parseConfig(configToJson(c).dump()) == c.
nlohmann::json configToJson(const Config& config);

// "memory.window_s: must be > 0 (got 0)\n..." — one line per problem.
std::string formatConfigProblems(const std::vector<ConfigProblem>& problems);

// `ollama.url` split into host and port ("http://127.0.0.1:11434" -> {"127.0.0.1", 11434}).
// Only http:// with an explicit or default (80) port and no path beyond "/".
struct HttpHostPort {
  std::string host;
  uint16_t port = 0;
};
Result<HttpHostPort> parseHttpUrl(std::string_view url);

std::string_view toString(MemorySourceConfig::Kind kind);
std::string_view toString(MemoryConfig::OnCritical v);
std::string_view toString(OllamaConfig::Mode v);
std::string_view toString(OllamaConfig::FlashAttention v);
std::string_view toString(PreflightConfig::Mode v);

}  // namespace oasis
