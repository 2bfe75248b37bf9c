#pragma once
// oasisctl argument parsing: a table of commands with their options, and a parser that turns
// argv into Args or a usage error (exit 2). Pure: no I/O, so it is unit-tested.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace oasis::cli {

struct CommandSpec {
  std::string name;
  std::string synopsis;                  // "submit FILE.jsonl [--run R] [--wait]"
  std::string summary;                   // one line for the command list
  std::string details;                   // option descriptions, may be empty
  std::string example;                   // one example invocation
  std::set<std::string> valueOptions;    // "--run", "--state", ...
  std::set<std::string> flagOptions;     // "--wait", "-f", ...
  std::size_t minPositionals = 0;
  std::size_t maxPositionals = 0;
};

// Every command oasisctl knows, in help order.
const std::vector<CommandSpec>& commandSpecs();
const CommandSpec* findCommand(const std::string& name);

struct Args {
  std::string command;  // "" only when help was asked for with no command
  std::vector<std::string> positionals;
  std::map<std::string, std::string> options;  // value options, e.g. "--run" -> "r1"
  std::set<std::string> flags;                 // given flag options, e.g. "--wait"
  // Global options, accepted before or after the command.
  std::optional<std::string> socket;
  std::optional<std::string> config;
  bool json = false;
  bool help = false;
  bool noColor = false;

  bool has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::optional<std::string> option(const std::string& name) const;
};

struct ParseOutcome {
  Args args;
  std::string error;  // non-empty: a usage error, to print with the command's synopsis
  bool ok() const { return error.empty(); }
};

// argv without the program name. `--opt value` and `--opt=value` are both accepted; `--`
// ends option parsing. `help [COMMAND]` parses as help=true with command COMMAND.
ParseOutcome parseArgs(const std::vector<std::string>& argv);

}  // namespace oasis::cli
