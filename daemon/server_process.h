#pragma once
// The managed `ollama serve` child: launched in its own process group (so one signal reaches
// serve and every runner it forked), its stdout/stderr read line by line into the daemon log,
// its exit reported once. Runners share serve's group because Ollama sets no Setpgid for them
// (ollama-behaviour.md §4), which is what makes kill(-pgid) reach orphans too.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace oasis {

struct ServerExit {
  std::optional<int> exitCode;
  std::optional<int> signal;
  std::string describe() const;
};

// "llama runner started in 3.21 seconds" / "llama-server started in 12.34 seconds" /
// "runner started in X seconds" -> X; nullopt for other lines.
std::optional<double> parseRunnerStartedLine(const std::string& line);

class ServerProcess {
 public:
  using LineHandler = std::function<void(const std::string& line)>;
  using ExitHandler = std::function<void(const ServerExit&)>;

  ServerProcess(boost::asio::any_io_executor exec, LineHandler onLine, ExitHandler onExit);
  ~ServerProcess();

  // fork+exec argv with the current environment overlaid by env (a value of "\x01unset"
  // removes the variable). The child gets its own process group.
  Status launch(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  bool running() const;
  int pid() const;
  // Signals the whole process group (serve and its runners).
  void signalGroup(int sig);
  void signalServe(int sig);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace oasis
