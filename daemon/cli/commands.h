#pragma once
// oasisctl's commands over the daemon's control socket. run() is the whole program minus
// main(): it parses argv, talks to oasisd and returns the exit code.
//   0 ok, 1 failed/unhealthy, 2 usage error, 3 daemon unreachable.
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.h"

namespace oasis::cli {

enum ExitCode : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

struct Terminal {
  bool stdoutTty = false;
  bool stderrTty = false;
  bool noColorEnv = false;  // NO_COLOR set (any value)
};
Terminal detectTerminal();

// argv without the program name.
int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err, const Terminal& term);

// Help: the command list, or one command's synopsis, options and example.
std::string helpText(const std::string& command);

// One line of a submit file -> a trial spec. A spec has "kind" or "request"; otherwise a
// line with "model" is an Ollama generate body (kind generate, request = the rest).
// `run` fills in "run" when the line has none. Errors are the reason, without FILE:LINE.
Result<nlohmann::json> parseSubmitLine(const std::string& line, const std::string& run);

// "2h" / "30m" -> now minus that, as ISO-8601 UTC; an ISO time is passed through.
Result<std::string> resolveSince(const std::string& text);

}  // namespace oasis::cli
