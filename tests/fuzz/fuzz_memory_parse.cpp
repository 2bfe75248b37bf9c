// The memory parsers (common/memory_parse.cpp): macOS `vm_stat` text (vm_stat_command and
// file sources, which re-read a file every tick) and Linux /proc/meminfo, /proc/vmstat and
// /proc/pressure/memory. Each input goes through all four parsers (the corpus mixes the
// formats, so each parser also sees the others' text), and every accepted parse is turned
// into the MemorySample the memory policy consumes.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "common/memory_parse.h"
#include "fuzz_check.h"

using namespace oasis;

namespace {

void checkSample(const MemorySample& s) {
  if (s.psiSomeAvg10) FUZZ_CHECK(!std::isnan(*s.psiSomeAvg10));
  if (s.psiFullAvg10) FUZZ_CHECK(!std::isnan(*s.psiFullAvg10));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const WallTime wall = WallTime{} + std::chrono::hours(24 * 365 * 56);
  const SteadyTime steady = SteadyTime{} + std::chrono::hours(1);

  if (auto vm = parseVmStat(text)) {
    FUZZ_CHECK(vm->pageSize > 0);
    FUZZ_CHECK(vm->has("Pages free") && vm->has("Pages active") && vm->has("Pages inactive"));
    auto s = memorySampleFromVmStat(*vm, wall, steady);
    // available is documented as capped at total, and free is part of available.
    FUZZ_CHECK(s.availableBytes <= s.totalBytes);
    FUZZ_CHECK(s.freeBytes <= s.totalBytes);  // total is the sum of the queues, free among them
    FUZZ_CHECK(s.pageSizeBytes == vm->pageSize);
    auto hinted = memorySampleFromVmStat(*vm, wall, steady, uint64_t{16} << 30);
    FUZZ_CHECK(hinted.availableBytes <= hinted.totalBytes);
    FUZZ_CHECK(s.swapouts.has_value() == vm->hasSwapCounters());
    checkSample(s);
  } else {
    FUZZ_CHECK(!vm.error().message.empty());
  }

  auto meminfo = parseProcMemInfo(text);
  auto vmstat = parseProcVmStat(text);
  auto pressure = parsePressure(text);
  if (pressure) {
    FUZZ_CHECK(!std::isnan(pressure->some.avg10) && !std::isnan(pressure->some.avg60));
  }
  if (meminfo) {
    FUZZ_CHECK(meminfo->kibibytes.count("MemTotal") && meminfo->kibibytes.count("MemFree"));
    auto s = memorySampleFromLinux(*meminfo, vmstat ? &*vmstat : nullptr, pressure ? &*pressure : nullptr, 4096,
                                   wall, steady);
    FUZZ_CHECK(s.totalBytes == meminfo->memTotalBytes);
    if (vmstat) FUZZ_CHECK(s.swapouts.has_value() && *s.swapouts == vmstat->pswpout());
    checkSample(s);
  }
  if (vmstat) FUZZ_CHECK(vmstat->has("pswpin") && vmstat->has("pswpout"));
  return 0;
}
