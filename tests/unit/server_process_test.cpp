#include <signal.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>

#include "catch.h"
#include "daemon/server_process.h"

using namespace std::chrono_literals;

// A crashed serve leaves its runners orphaned, and they still hold the write end of serve's
// output pipe (fake-ollama's runners log through it). The next launch used to destroy the old
// pipe while a read on it was in progress: a use-after-free that segfaulted oasisd in the
// incident replay's serve-crash phase. Here the orphan writes line fragments without a newline,
// so the old read is always mid-way (reading until '\n') when the relaunch happens.
TEST_CASE("server process: relaunch while the previous serve's orphans still write to its pipe", "[server_process]") {
  boost::asio::io_context io;
  int exits = 0;
  std::vector<std::string> lines;
  oasis::ServerProcess serve(
      io.get_executor(), [&](const std::string& l) { lines.push_back(l); },
      [&](const oasis::ServerExit&) { ++exits; });
  const std::vector<std::string> argv = {"/bin/sh", "-c", "(while :; do printf x; sleep 0.002; done) & echo started; exit 1"};
  auto runUntil = [&](auto cond) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!cond() && std::chrono::steady_clock::now() < deadline) io.run_for(10ms);
    return cond();
  };

  REQUIRE(serve.launch(argv, {}).ok());
  const int first = serve.pid();
  REQUIRE(runUntil([&] { return exits == 1; }));
  // The orphan keeps writing: let a few fragments arrive so a read is in progress.
  io.run_for(30ms);
  REQUIRE(serve.launch(argv, {}).ok());
  const int second = serve.pid();
  REQUIRE(runUntil([&] { return exits == 2; }));
  io.run_for(30ms);
  ::kill(-first, SIGKILL);  // the orphans, through their process groups
  ::kill(-second, SIGKILL);
  io.run_for(30ms);
  // Both serves' lines arrived (the orphans' fragments may prefix them: "xxstarted").
  auto started = std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return l.find("started") != std::string::npos; });
  CHECK(started == 2);
}
