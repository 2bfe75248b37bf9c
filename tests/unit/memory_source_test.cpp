#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "catch.h"
#include "daemon/memory_source.h"

using namespace oasis;
using namespace std::chrono_literals;

namespace {

std::string fixturePath(const std::string& name) {
  return std::string(OASIS_SOURCE_DIR) + "/tests/fixtures/vm_stat/" + name;
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// A private temp directory, removed with its files.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/oasis-memsrc-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    for (const auto& f : files_) std::remove(f.c_str());
    ::rmdir(path_.c_str());
  }
  // Writes atomically (temp + rename), as a replaying test should.
  std::string write(const std::string& name, const std::string& text) {
    const std::string target = path_ + "/" + name;
    const std::string tmp = target + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
    }
    REQUIRE(std::rename(tmp.c_str(), target.c_str()) == 0);
    files_.push_back(target);
    return target;
  }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

const char* kMeminfo = "MemTotal: 16000000 kB\nMemFree: 1000000 kB\nMemAvailable: 8000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
const char* kVmstat = "pswpin 3\npswpout 500000\npgmajfault 9\n";
const char* kPressure = "some avg10=41.00 avg60=10.00 avg300=2.00 total=123\nfull avg10=20.00 avg60=5.00 avg300=1.00 total=45\n";

}  // namespace

TEST_CASE("memory source: /proc reader with injected paths", "[memory_source]") {
  TempDir dir;
  ManualClock clock;
  ProcMemoryPaths paths{dir.write("meminfo", kMeminfo), dir.write("vmstat", kVmstat), dir.write("pressure", kPressure)};
  ProcMemorySource source(clock, paths);
  CHECK(source.describe() == "linux_proc");

  auto s = source.sample();
  REQUIRE(s.ok());
  CHECK(s->totalBytes == 16000000ull * 1024);
  CHECK(s->availableBytes == 8000000ull * 1024);
  CHECK(s->freeBytes == 1000000ull * 1024);
  CHECK(*s->swapouts == 500000);
  CHECK(*s->psiSomeAvg10 == Approx(41.0));
  CHECK(s->steadyAt == clock.steadyNow());
  CHECK(s->wallAt == clock.wallNow());

  clock.advance(1500ms);
  auto later = source.sample();
  REQUIRE(later.ok());
  CHECK(later->steadyAt - s->steadyAt == 1500ms);

  SECTION("PSI absent (no CONFIG_PSI) is not an error") {
    ProcMemorySource noPsi(clock, ProcMemoryPaths{paths.meminfo, paths.vmstat, dir.path("absent")});
    auto r = noPsi.sample();
    REQUIRE(r.ok());
    CHECK_FALSE(r->psiSomeAvg10);
  }
  SECTION("a pressure file that does not parse is an error") {
    ProcMemorySource bad(clock, ProcMemoryPaths{paths.meminfo, paths.vmstat, dir.write("bad", "garbage\n")});
    auto r = bad.sample();
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("bad"));
  }
  SECTION("meminfo missing is an error naming the path") {
    ProcMemorySource missing(clock, ProcMemoryPaths{dir.path("nope"), paths.vmstat, paths.pressure});
    auto r = missing.sample();
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("nope"));
  }
}

TEST_CASE("memory source: file source re-reads the file every tick", "[memory_source]") {
  TempDir dir;
  ManualClock clock;
  const std::string path = dir.write("vm_stat.txt", readAll(fixturePath("apple_silicon_16k_53col.txt")));
  FileMemorySource source(clock, path);
  CHECK(source.describe() == "file: " + path);

  auto calm = source.sample();
  REQUIRE(calm.ok());
  CHECK(*calm->swapouts == 0);
  CHECK(calm->freeBytes == 9183ull * 16384);
  CHECK(calm->source == "file: " + path);

  // The replay rewrites the file: the next tick sees the swapping machine.
  dir.write("vm_stat.txt", readAll(fixturePath("apple_silicon_8gb_48col_swapping.txt")));
  clock.advance(1s);
  auto swapping = source.sample();
  REQUIRE(swapping.ok());
  CHECK(*swapping->swapouts == 11137186);
  CHECK(swapping->freeBytes == 5076ull * 16384);

  dir.write("vm_stat.txt", "Mach Virtual Memory Statistics: (page size of 16384 bytes)\nPages free: oops.\n");
  auto garbage = source.sample();
  REQUIRE_FALSE(garbage.ok());
  CHECK_THAT(garbage.error().message, Catch::Contains(path));
  CHECK_THAT(garbage.error().message, Catch::Contains("line 2"));

  FileMemorySource missing(clock, dir.path("absent.txt"));
  auto r = missing.sample();
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Contains("absent.txt"));
}

TEST_CASE("memory source: runCaptured", "[memory_source]") {
  auto ok = runCaptured({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, 5000ms, 1024);
  REQUIRE(ok.ok());
  CHECK(ok->exitCode == 3);
  CHECK(ok->out == "out\n");
  CHECK(ok->err == "err\n");

  auto path = runCaptured({"echo", "found", "via", "PATH"}, 5000ms, 1024);
  REQUIRE(path.ok());
  CHECK(path->out == "found via PATH\n");

  const auto t0 = std::chrono::steady_clock::now();
  auto slow = runCaptured({"/bin/sleep", "10"}, 200ms, 1024);
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error().code == ETIMEDOUT);
  CHECK_THAT(slow.error().message, Catch::Contains("timed out"));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);

  // Closes stdout but keeps running: still bounded by the timeout.
  auto lingering = runCaptured({"/bin/sh", "-c", "exec >&- 2>&-; sleep 10"}, 200ms, 1024);
  REQUIRE_FALSE(lingering.ok());
  CHECK(lingering.error().code == ETIMEDOUT);

  auto big = runCaptured({"/bin/sh", "-c", "head -c 100000 /dev/zero"}, 5000ms, 4096);
  REQUIRE_FALSE(big.ok());
  CHECK_THAT(big.error().message, Catch::Contains("more than 4096 bytes"));

  auto missing = runCaptured({"/nonexistent/vm_stat"}, 1000ms, 1024);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("cannot run"));

  CHECK_FALSE(runCaptured({}, 1000ms, 1024).ok());
}

TEST_CASE("memory source: vm_stat_command", "[memory_source]") {
  ManualClock clock;
  VmStatCommandSource source(clock, {"cat", fixturePath("intel_4k_idle.txt")}, 5000ms, 32ull << 30);
  CHECK_THAT(source.describe(), Catch::StartsWith("vm_stat_command: cat "));
  auto s = source.sample();
  REQUIRE(s.ok());
  CHECK(s->pageSizeBytes == 4096);
  CHECK(s->totalBytes == 32ull << 30);
  CHECK(s->freeBytes == 6127229ull * 4096);
  CHECK(s->steadyAt == clock.steadyNow());

  VmStatCommandSource failing(clock, {"/bin/sh", "-c", "echo 'vm_stat: host_statistics64 failed' >&2; exit 1"});
  auto f = failing.sample();
  REQUIRE_FALSE(f.ok());
  CHECK_THAT(f.error().message, Catch::Contains("exited with status 1"));
  CHECK_THAT(f.error().message, Catch::Contains("host_statistics64 failed"));

  VmStatCommandSource garbage(clock, {"echo", "hello"});
  auto g = garbage.sample();
  REQUIRE_FALSE(g.ok());
  CHECK_THAT(g.error().message, Catch::Contains("line 1"));
}

TEST_CASE("memory source: factory", "[memory_source]") {
  ManualClock clock;
  MemorySourceConfig autoConfig;
  auto autoSource = makeMemorySource(autoConfig, clock);
  REQUIRE(autoSource.ok());
#if defined(__linux__)
  CHECK((*autoSource)->describe() == "linux_proc");
  auto sample = (*autoSource)->sample();
  REQUIRE(sample.ok());
  CHECK(sample->totalBytes > 0);
#endif

  MemorySourceConfig cmd;
  cmd.kind = MemorySourceConfig::Kind::VmStatCommand;
  cmd.argv = {"cat", fixturePath("apple_silicon_16k_53col.txt")};
  cmd.timeoutS = 2.5;
  auto cmdSource = makeMemorySource(cmd, clock, 16ull << 30);
  REQUIRE(cmdSource.ok());
  auto cs = (*cmdSource)->sample();
  REQUIRE(cs.ok());
  CHECK(cs->totalBytes == 16ull << 30);

  MemorySourceConfig file;
  file.kind = MemorySourceConfig::Kind::File;
  file.path = fixturePath("apple_silicon_8gb_48col_swapping.txt");
  auto fileSource = makeMemorySource(file, clock, 64ull << 30);
  REQUIRE(fileSource.ok());
  auto fs = (*fileSource)->sample();
  REQUIRE(fs.ok());
  // A replayed capture describes its own machine: no host total hint.
  CHECK(fs->totalBytes == (5076ull + 107971 + 106508 + 844 + 0 + 111522 + 148632) * 16384);

  MemorySourceConfig badFile = file;
  badFile.path.clear();
  CHECK_FALSE(makeMemorySource(badFile, clock).ok());
  MemorySourceConfig badFormat = file;
  badFormat.format = "json";
  CHECK_FALSE(makeMemorySource(badFormat, clock).ok());
  MemorySourceConfig badCmd = cmd;
  badCmd.argv.clear();
  CHECK_FALSE(makeMemorySource(badCmd, clock).ok());
}
