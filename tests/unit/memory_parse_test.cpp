#include <fstream>
#include <sstream>

#include "catch.h"
#include "common/memory_parse.h"

using namespace oasis;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(OASIS_SOURCE_DIR) + "/tests/fixtures/vm_stat/" + name, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

const WallTime kWall = WallTime{} + std::chrono::hours(24 * 365 * 56);
const SteadyTime kSteady = SteadyTime{} + std::chrono::hours(1);

}  // namespace

TEST_CASE("vm_stat: Apple Silicon 16 KiB, 53-column capture", "[memory_parse][vm_stat]") {
  auto snap = parseVmStat(fixture("apple_silicon_16k_53col.txt"));
  REQUIRE(snap.ok());
  CHECK(snap->pageSize == 16384);
  CHECK(snap->values.size() == 22);
  CHECK(snap->free() == 9183);
  CHECK(snap->active() == 411410);
  CHECK(snap->inactive() == 487519);
  CHECK(snap->speculative() == 1860);
  CHECK(snap->throttled() == 0);
  CHECK(snap->wired() == 103114);
  CHECK(snap->purgeable() == 12355);
  CHECK(snap->translationFaults() == 17091566);
  CHECK(snap->get("Pages copy-on-write") == 1024590);
  CHECK(snap->fileBacked() == 433779);
  CHECK(snap->anonymous() == 467010);
  CHECK(snap->storedInCompressor() == 3223);
  CHECK(snap->compressorOccupied() == 798);
  CHECK(snap->get("Decompressions") == 2043);
  CHECK(snap->get("Compressions") == 5266);
  CHECK(snap->pageins() == 543115);
  CHECK(snap->pageouts() == 12);
  CHECK(snap->swapins() == 0);
  CHECK(snap->swapouts() == 0);
  CHECK(snap->hasSwapCounters());
  // The quoted label is stored without its quotes.
  CHECK(snap->has("Translation faults"));
  CHECK_FALSE(snap->has("\"Translation faults\""));
}

TEST_CASE("vm_stat: Apple Silicon 8 GB, 48-column, heavily swapping", "[memory_parse][vm_stat]") {
  auto snap = parseVmStat(fixture("apple_silicon_8gb_48col_swapping.txt"));
  REQUIRE(snap.ok());
  CHECK(snap->pageSize == 16384);
  CHECK(snap->free() == 5076);
  CHECK(snap->translationFaults() == 717814376);
  CHECK(snap->storedInCompressor() == 677154);
  CHECK(snap->compressorOccupied() == 148632);
  CHECK(snap->pageouts() == 690778);
  CHECK(snap->swapins() == 10554789);
  CHECK(snap->swapouts() == 11137186);

  auto sample = memorySampleFromVmStat(*snap, kWall, kSteady);
  CHECK(sample.pageSizeBytes == 16384);
  CHECK(sample.freeBytes == 5076ull * 16384);
  CHECK(sample.availableBytes == (5076ull + 844 + 106508 + 429) * 16384);
  // Total from the page queues: free+active+inactive+speculative+throttled+wired+compressor.
  CHECK(sample.totalBytes == (5076ull + 107971 + 106508 + 844 + 0 + 111522 + 148632) * 16384);
  REQUIRE(sample.swapouts);
  CHECK(*sample.swapouts == 11137186);
  CHECK(*sample.swapoutBytes() == 11137186ull * 16384);
  CHECK(*sample.swapins == 10554789);
  CHECK(sample.wallAt == kWall);
  CHECK(sample.steadyAt == kSteady);
  CHECK_FALSE(sample.osPressureLevel);
}

TEST_CASE("vm_stat: Intel 4 KiB idle capture", "[memory_parse][vm_stat]") {
  auto snap = parseVmStat(fixture("intel_4k_idle.txt"));
  REQUIRE(snap.ok());
  CHECK(snap->pageSize == 4096);
  CHECK(snap->values.size() == 22);
  CHECK(snap->free() == 6127229);
  CHECK(snap->speculative() == 430715);
  CHECK(snap->swapouts() == 0);

  // hw.memsize as the total hint: available is capped by it, total is taken from it.
  const uint64_t total = 32ull << 30;
  auto sample = memorySampleFromVmStat(*snap, kWall, kSteady, total);
  CHECK(sample.totalBytes == total);
  CHECK(sample.availableBytes == (6127229ull + 430715 + 628646 + 11820) * 4096);
  CHECK(sample.freeBytes == 6127229ull * 4096);

  auto capped = memorySampleFromVmStat(*snap, kWall, kSteady, 1ull << 30);
  CHECK(capped.availableBytes == 1ull << 30);
}

TEST_CASE("vm_stat: OS X <= 10.8 layout with Object cache line", "[memory_parse][vm_stat]") {
  auto snap = parseVmStat(fixture("osx_10_6_legacy_synthetic.txt"));
  REQUIRE(snap.ok());
  CHECK(snap->pageSize == 4096);
  CHECK(snap->free() == 22234);
  CHECK(snap->translationFaults() == 22082286);
  CHECK(snap->pageouts() == 12102);
  CHECK(snap->get("Object cache hits") == 14);
  CHECK(snap->get("Object cache lookups") == 797355);
  CHECK_FALSE(snap->hasSwapCounters());
  CHECK_FALSE(snap->has("Pages purgeable"));

  auto sample = memorySampleFromVmStat(*snap, kWall, kSteady);
  CHECK_FALSE(sample.swapouts);  // unknown, not zero
  CHECK_FALSE(sample.swapoutBytes());
  CHECK(sample.availableBytes == (22234ull + 14098 + 74226) * 4096);
}

TEST_CASE("vm_stat: MTE lines of system_cmds 1042 are kept as unknown labels", "[memory_parse][vm_stat]") {
  auto snap = parseVmStat(fixture("mte_53col_synthetic.txt"));
  REQUIRE(snap.ok());
  CHECK(snap->values.size() == 33);
  CHECK(snap->free() == 9183);
  CHECK(snap->get("Pages tagged") == 1000);
  CHECK(snap->get("Pages tag-storage non-tag pageable") == 1006);
  CHECK(snap->get("Tagged decompressions") == 1010);
}

TEST_CASE("vm_stat: tolerant of CRLF, blank lines, missing final newline", "[memory_parse][vm_stat]") {
  std::string text = fixture("intel_4k_idle.txt");
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += "\r\n";
    else crlf += c;
  }
  auto a = parseVmStat("\n\n" + crlf + "\r\n\r\n");
  REQUIRE(a.ok());
  CHECK(a->free() == 6127229);
  text.pop_back();  // no trailing newline
  auto b = parseVmStat(text);
  REQUIRE(b.ok());
  CHECK(b->swapouts() == 0);
}

TEST_CASE("vm_stat: garbage is rejected with an error naming the line", "[memory_parse][vm_stat]") {
  const std::string good = fixture("apple_silicon_8gb_48col_swapping.txt");

  SECTION("empty") {
    auto r = parseVmStat("");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("empty"));
  }
  SECTION("no header") {
    auto r = parseVmStat("Pages free:                                5076.\n");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 1"));
    CHECK_THAT(r.error().message, Catch::Contains("header"));
  }
  SECTION("HTML error page") {
    auto r = parseVmStat("<html><body>502 Bad Gateway</body></html>\n");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 1"));
  }
  SECTION("malformed page size") {
    auto r = parseVmStat("Mach Virtual Memory Statistics: (page size of lots bytes)\n");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("page size"));
    auto r2 = parseVmStat("Mach Virtual Memory Statistics: (page size of 12345 bytes)\n");
    REQUIRE_FALSE(r2.ok());
    CHECK_THAT(r2.error().message, Catch::Contains("power of two"));
  }
  SECTION("non-numeric value names the line") {
    std::string bad = good;
    auto pos = bad.find("107971.");
    bad.replace(pos, 7, "10797x.");
    auto r = parseVmStat(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 3"));
    CHECK_THAT(r.error().message, Catch::Contains("non-numeric"));
    CHECK_THAT(r.error().message, Catch::Contains("Pages active:"));
  }
  SECTION("negative and fractional values") {
    std::string bad = good;
    bad.replace(bad.find("5076."), 5, "-5076");
    CHECK_FALSE(parseVmStat(bad).ok());
    std::string frac = good;
    frac.replace(frac.find("5076."), 5, "50.76");
    CHECK_FALSE(parseVmStat(frac).ok());
  }
  SECTION("overflow") {
    std::string bad = good;
    bad.replace(bad.find("5076."), 5, "99999999999999999999999.");
    auto r = parseVmStat(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 2"));
  }
  SECTION("line without a colon") {
    auto r = parseVmStat(good + "garbage here\n");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 24"));
    CHECK_THAT(r.error().message, Catch::Contains("garbage here"));
  }
  SECTION("interval mode output is not a snapshot") {
    auto r = parseVmStat(fixture("interval_mode_yosemite.txt"));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 2"));
    CHECK_THAT(r.error().message, Catch::Contains("interval"));
  }
  SECTION("missing required label") {
    std::string bad = good;
    auto start = bad.find("Pages wired down:");
    bad.erase(start, bad.find('\n', start) - start + 1);
    auto r = parseVmStat(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("Pages wired down"));
  }
  SECTION("header only") {
    auto r = parseVmStat("Mach Virtual Memory Statistics: (page size of 16384 bytes)\n");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("missing required"));
  }
  SECTION("two snapshots concatenated (a half-rewritten replay file)") {
    auto r = parseVmStat(good + good);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("line 24"));
  }
  SECTION("binary junk is quoted safely") {
    auto r = parseVmStat(good + std::string("Pages free\x01\x02:  1.\n"));
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains("control character"));
    CHECK(r.error().message.find('\x01') == std::string::npos);
    auto r2 = parseVmStat(good + std::string("\x01\x02\x03\n"));
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().message.find('\x01') == std::string::npos);
  }
}

TEST_CASE("/proc/meminfo parsing", "[memory_parse][linux]") {
  const std::string text =
      "MemTotal:       24683792 kB\n"
      "MemFree:        20000000 kB\n"
      "MemAvailable:   24323856 kB\n"
      "Buffers:          100000 kB\n"
      "Cached:          3000000 kB\n"
      "SwapTotal:             0 kB\n"
      "SwapFree:              0 kB\n"
      "HugePages_Total:       0\n"
      "Hugepagesize:       2048 kB\n";
  auto m = parseProcMemInfo(text);
  REQUIRE(m.ok());
  CHECK(m->memTotalBytes == 24683792ull * 1024);
  CHECK(m->memFreeBytes == 20000000ull * 1024);
  CHECK(m->memAvailableBytes == 24323856ull * 1024);
  CHECK_FALSE(m->memAvailableEstimated);
  CHECK(m->swapTotalBytes == 0);
  CHECK(m->kibibytes.at("HugePages_Total") == 0);

  SECTION("pre-3.14 kernel without MemAvailable") {
    auto old = parseProcMemInfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n");
    REQUIRE(old.ok());
    CHECK(old->memAvailableEstimated);
    CHECK(old->memAvailableBytes == 310ull * 1024);
  }
  SECTION("errors") {
    auto noTotal = parseProcMemInfo("MemFree: 100 kB\n");
    REQUIRE_FALSE(noTotal.ok());
    CHECK_THAT(noTotal.error().message, Catch::Contains("MemTotal"));
    auto bad = parseProcMemInfo("MemTotal: 1000 kB\nMemFree: lots kB\n");
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Contains("line 2"));
    auto noColon = parseProcMemInfo("MemTotal 1000 kB\n");
    REQUIRE_FALSE(noColon.ok());
    CHECK_THAT(noColon.error().message, Catch::Contains("line 1"));
  }
}

TEST_CASE("/proc/vmstat parsing", "[memory_parse][linux]") {
  auto v = parseProcVmStat("nr_free_pages 123\npswpin 0\npswpout 42\npgmajfault 1127\noom_kill 0\n");
  REQUIRE(v.ok());
  CHECK(v->pswpin() == 0);
  CHECK(v->pswpout() == 42);
  CHECK(v->pgmajfault() == 1127);
  CHECK(v->get("nr_free_pages") == 123);
  CHECK(v->get("absent") == 0);

  auto missing = parseProcVmStat("pgmajfault 1\n");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("pswpin"));
  auto bad = parseProcVmStat("pswpin 0\npswpout x\n");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("line 2"));
}

TEST_CASE("/proc/pressure/memory parsing", "[memory_parse][linux]") {
  auto p = parsePressure(
      "some avg10=2.95 avg60=5.35 avg300=3.75 total=19870654\n"
      "full avg10=1.00 avg60=0.50 avg300=0.25 total=12\n");
  REQUIRE(p.ok());
  CHECK(p->some.avg10 == Approx(2.95));
  CHECK(p->some.avg60 == Approx(5.35));
  CHECK(p->some.avg300 == Approx(3.75));
  CHECK(p->some.totalMicros == 19870654);
  REQUIRE(p->full);
  CHECK(p->full->avg10 == Approx(1.0));
  CHECK(p->full->totalMicros == 12);

  CHECK_FALSE(parsePressure("").ok());
  auto noSome = parsePressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  REQUIRE_FALSE(noSome.ok());
  CHECK_THAT(noSome.error().message, Catch::Contains("some"));
  auto bad = parsePressure("some avg10=x avg60=0.00 avg300=0.00 total=0\n");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("line 1"));
  auto partial = parsePressure("some avg10=0.00 total=0\n");
  REQUIRE_FALSE(partial.ok());
  CHECK_THAT(partial.error().message, Catch::Contains("missing"));
  auto wrongKind = parsePressure("most avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
  CHECK_FALSE(wrongKind.ok());
}

TEST_CASE("Linux trio converts to a MemorySample", "[memory_parse][linux]") {
  auto m = parseProcMemInfo("MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\n");
  auto v = parseProcVmStat("pswpin 7\npswpout 9\n");
  auto p = parsePressure("some avg10=12.50 avg60=0 avg300=0 total=1\nfull avg10=3.25 avg60=0 avg300=0 total=1\n");
  REQUIRE(m.ok());
  REQUIRE(v.ok());
  REQUIRE(p.ok());
  auto s = memorySampleFromLinux(*m, &*v, &*p, 4096, kWall, kSteady);
  CHECK(s.totalBytes == 1000 * 1024);
  CHECK(s.availableBytes == 600 * 1024);
  CHECK(s.freeBytes == 100 * 1024);
  CHECK(*s.swapouts == 9);
  CHECK(*s.swapins == 7);
  CHECK(*s.swapoutBytes() == 9 * 4096);
  CHECK(*s.psiSomeAvg10 == Approx(12.5));
  CHECK(*s.psiFullAvg10 == Approx(3.25));
  CHECK_FALSE(s.osPressureLevel);
  CHECK(s.source == "linux_proc");

  auto bare = memorySampleFromLinux(*m, nullptr, nullptr, 4096, kWall, kSteady);
  CHECK_FALSE(bare.swapouts);
  CHECK_FALSE(bare.psiSomeAvg10);
}
