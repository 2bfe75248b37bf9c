#pragma once
// The harness of a target that serves on a Unix socket (fuzz_http_request, fuzz_ollama_stream):
// one object, built on first use, never destroyed, with a temporary directory removed at exit.
//
//   struct Harness { std::string dir = oasis::fuzz::makeTempDir("oasis-fuzz-x"); ... };
//   auto& h = oasis::fuzz::harness<Harness>();
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace oasis::fuzz {

// A new directory `<prefix>-XXXXXX` in the system's temporary directory; aborts if it cannot be made.
inline std::string makeTempDir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) std::abort();
  return tmpl;
}

// The one H, made on first use. Never destroyed: libFuzzer exits from inside its loop, and the
// harness's timers and connections must not be torn down under it. H::dir goes at exit.
template <typename H>
H& harness() {
  static H* h = [] {
    auto* p = new H();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(harness<H>().dir, ec);
    });
    return p;
  }();
  return *h;
}

}  // namespace oasis::fuzz
