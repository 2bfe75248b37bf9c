#pragma once
// Reading small files whole (/proc entries, replayed vm_stat captures, configs), bounded.
#include <cstddef>
#include <string>

#include "common/result.h"

namespace oasis {

enum class OversizePolicy { Fail, Truncate };

// Reads `path` whole. Beyond `maxBytes` it fails (EFBIG) or truncates, as asked. Errors carry
// errno in Error::code (ENOENT/ESRCH on a /proc/<pid> file mean the process is gone).
Result<std::string> readFileBounded(const std::string& path, std::size_t maxBytes, OversizePolicy oversize);

}  // namespace oasis
