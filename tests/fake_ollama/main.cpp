// fake-ollama: the Ollama emulator (contract: shared/contracts/fake-ollama.md).
//   fake-ollama serve                     the API server (OLLAMA_HOST, default 127.0.0.1:11434)
//   fake-ollama runner --model M --port N --flash-attn on|off   a model runner, started by serve
#include <cstdio>
#include <string>

#include "tests/fake_ollama/settings.h"
#include "tests/fake_ollama/subcommands.h"

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "serve") return fake_ollama::serveMain(argc, argv);
  if (cmd == "runner") return fake_ollama::runnerMain(argc, argv);
  if (cmd == "--version" || cmd == "-v" || cmd == "version") {
    std::printf("ollama version is %s\n", fake_ollama::kVersion);
    return 0;
  }
  std::fprintf(stderr,
               "usage: fake-ollama serve\n"
               "       fake-ollama runner --model <name> --port <n> --flash-attn on|off\n");
  return 2;
}
