#pragma once
// Where memory samples come from (config `memory.source`). The sampler calls sample() once
// per `memory.interval_s` tick; a source never keeps history (the policy owns the window).
//
// sample() is synchronous: the /proc and file sources read small files (microseconds);
// vm_stat_command runs a child process bounded by its timeout (vm_stat itself takes a few
// ms). Call it off the event loop's strand if a slow command could matter.
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/memory_parse.h"
#include "common/result.h"

namespace oasis {

class MemorySource {
 public:
  virtual ~MemorySource() = default;
  virtual Result<MemorySample> sample() = 0;
  // For status and logs: "linux_proc", "vm_stat_command: vm_stat", "file: /tmp/vm.txt", ...
  virtual std::string describe() const = 0;
};

// ---------------------------------------------------------------------------------------
// Linux /proc
// ---------------------------------------------------------------------------------------

struct ProcMemoryPaths {
  std::string meminfo = "/proc/meminfo";
  std::string vmstat = "/proc/vmstat";
  std::string pressure = "/proc/pressure/memory";  // optional: PSI may be absent or disabled
};

// Reads and parses the three files. meminfo and vmstat are required; pressure is optional
// (ENOENT without CONFIG_PSI, EOPNOTSUPP when booted with psi=0) and any failure to read
// it leaves psiSomeAvg10 empty — but a pressure file that reads and does not parse is an
// error, since that means we are reading the wrong thing.
Result<MemorySample> readProcMemory(const ProcMemoryPaths& paths, const Clock& clock);

class ProcMemorySource final : public MemorySource {
 public:
  explicit ProcMemorySource(const Clock& clock, ProcMemoryPaths paths = {});
  Result<MemorySample> sample() override;
  std::string describe() const override { return "linux_proc"; }

 private:
  const Clock& clock_;
  ProcMemoryPaths paths_;
};

// ---------------------------------------------------------------------------------------
// vm_stat text: from a command, or from a file re-read every tick
// ---------------------------------------------------------------------------------------

struct CommandOutput {
  int exitCode = -1;  // exit status, or -1 when killed by a signal
  std::string out;
  std::string err;  // first few KiB of stderr, for error messages
};

// Runs argv (PATH lookup for argv[0]) with stdin from /dev/null, capturing stdout (at most
// `maxOutputBytes`) and the head of stderr. The child is killed (SIGKILL) and reaped when
// it exceeds `timeout` or the output bound; both are errors. The child is our own, so its
// PID cannot be reused before we reap it: a plain kill() is safe here.
// Note: assumes nobody else reaps our children (no global waitpid(-1) / SIGCHLD=SIG_IGN).
Result<CommandOutput> runCaptured(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                                  std::size_t maxOutputBytes);

// `{"kind": "vm_stat_command", "argv": ["vm_stat"]}`: runs the command every tick and
// parses its snapshot output. totalBytes comes from `totalBytesHint` when known (the
// factory passes hw.memsize / MemTotal), else from the page queues (see
// memorySampleFromVmStat). The OS pressure level is not in vm_stat's text.
class VmStatCommandSource final : public MemorySource {
 public:
  VmStatCommandSource(const Clock& clock, std::vector<std::string> argv,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5),
                      std::optional<uint64_t> totalBytesHint = std::nullopt);
  Result<MemorySample> sample() override;
  std::string describe() const override;

  static constexpr std::size_t kMaxOutputBytes = 64 * 1024;  // real output is ~1.2 KB

 private:
  const Clock& clock_;
  std::vector<std::string> argv_;
  std::chrono::milliseconds timeout_;
  std::optional<uint64_t> totalBytesHint_;
};

// `{"kind": "file", "path": P, "format": "vm_stat"}`: re-reads P every tick. This is how
// tests replay the incident's pressure gradient: they rewrite the file (write a temp file
// and rename it over P, so a tick never sees half a file). The factory gives it no total
// hint: a replayed capture describes another machine, so its total comes from its own
// page queues.
class FileMemorySource final : public MemorySource {
 public:
  FileMemorySource(const Clock& clock, std::string path, std::optional<uint64_t> totalBytesHint = std::nullopt);
  Result<MemorySample> sample() override;
  std::string describe() const override { return "file: " + path_; }

  static constexpr std::size_t kMaxFileBytes = 64 * 1024;

 private:
  const Clock& clock_;
  std::string path_;
  std::optional<uint64_t> totalBytesHint_;
};

// `{"kind": "auto"}` on macOS: host_statistics64 + kern.memorystatus_vm_pressure_level
// through the platform layer (no process spawned per tick).
class NativeMemorySource final : public MemorySource {
 public:
  explicit NativeMemorySource(const Clock& clock) : clock_(clock) {}
  Result<MemorySample> sample() override;
  std::string describe() const override { return "darwin_native"; }

 private:
  const Clock& clock_;
};

// Builds the configured source. `auto` = Linux /proc on Linux, native on macOS.
// `totalBytesHint` (this host's physical RAM) is given to vm_stat_command so that status
// reports the real total; when absent the factory asks the platform layer.
Result<std::unique_ptr<MemorySource>> makeMemorySource(const MemorySourceConfig& config, const Clock& clock,
                                                       std::optional<uint64_t> totalBytesHint = std::nullopt);

}  // namespace oasis
