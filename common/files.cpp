#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace oasis {

Result<std::string> readFileBounded(const std::string& path, std::size_t maxBytes, OversizePolicy oversize) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Error("cannot open " + path + ": " + std::strerror(err), err);
  }
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Error("cannot read " + path + ": " + std::strerror(err), err);
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > maxBytes) {
      if (oversize == OversizePolicy::Truncate) {
        data.resize(maxBytes);
        break;
      }
      ::close(fd);
      return Error(path + " is larger than " + std::to_string(maxBytes) + " bytes", EFBIG);
    }
  }
  ::close(fd);
  return data;
}

}  // namespace oasis
