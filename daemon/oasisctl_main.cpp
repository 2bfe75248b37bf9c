// oasisctl: the command line over oasisd's control socket. All logic is in daemon/cli/.
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "daemon/cli/commands.h"

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  int code = oasis::cli::run(args, std::cout, std::cerr, oasis::cli::detectTerminal());
  std::cout.flush();
  return code;
}
