#pragma once
// The load generator's plumbing: a blocking HTTP/1.1 keep-alive client over TCP or a Unix
// socket, and child processes in their own process group. Deliberately minimal (no Asio, no
// JSON on the hot path) so that the client's own cost stays far below what is being measured.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace oasis::bench {

using Clock = std::chrono::steady_clock;

struct Target {
  std::string unixPath;  // non-empty: Unix socket
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

struct Reply {
  int status = 0;
  std::string body;
};

// Buffered reads of HTTP framing from a blocking socket: lines, then exact byte counts.
class Reader {
 public:
  void reset(int fd) {
    fd_ = fd;
    buf_.clear();
    pos_ = 0;
  }

  bool fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char tmp[65536];
    for (;;) {
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<std::size_t>(n));
      return true;
    }
  }

  bool readLine(std::string& line) {
    for (;;) {
      auto eol = buf_.find("\r\n", pos_);
      if (eol != std::string::npos) {
        line.assign(buf_, pos_, eol - pos_);
        pos_ = eol + 2;
        return true;
      }
      if (!fill()) return false;
    }
  }

  bool readBytes(std::size_t n, std::string& out) {
    while (buf_.size() - pos_ < n)
      if (!fill()) return false;
    out.append(buf_, pos_, n);
    pos_ += n;
    return true;
  }

  // Everything up to end of stream (a reply framed by closing the connection).
  void readToEnd(std::string& out) {
    while (fill()) {
    }
    out.append(buf_, pos_, std::string::npos);
    pos_ = buf_.size();
  }

 private:
  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0;
};

// One header line of a request or reply: lower-cased name and the value without leading blanks.
inline bool splitHeader(const std::string& line, std::string& name, std::string& value) {
  auto colon = line.find(':');
  if (colon == std::string::npos) return false;
  name = line.substr(0, colon);
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  value = line.substr(colon + 1);
  while (!value.empty() && value.front() == ' ') value.erase(0, 1);
  return true;
}

inline bool writeAll(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

class Conn {
 public:
  explicit Conn(Target t) : target_(std::move(t)) {}
  ~Conn() { close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // One request on the kept-alive connection (reconnects once if the server had closed it).
  Reply request(const std::string& method, const std::string& path, const std::string& body = {}) {
    std::string head = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n";
    if (!body.empty() || method == "POST")
      head += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    head += "\r\n";
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool fresh = fd_ < 0;
      if (fd_ < 0) connect();
      if (!writeAll(fd_, head) || (!body.empty() && !writeAll(fd_, body))) {
        close();
        if (fresh) throw std::runtime_error("write failed to " + describe());
        continue;
      }
      Reply r;
      bool keep = true;
      if (readReply(r, keep)) {
        if (!keep) close();
        return r;
      }
      close();
      if (fresh) throw std::runtime_error("no reply from " + describe() + " for " + method + " " + path);
    }
    throw std::runtime_error("connection to " + describe() + " keeps closing");
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    in_.reset(-1);
  }

 private:
  std::string describe() const {
    return target_.unixPath.empty() ? target_.host + ":" + std::to_string(target_.port) : target_.unixPath;
  }

  void connect() {
    if (!target_.unixPath.empty()) {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, target_.unixPath.c_str(), sizeof a.sun_path - 1);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close();
        throw std::runtime_error("cannot connect to " + describe() + ": " + std::strerror(errno));
      }
    } else {
      fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(target_.port);
      ::inet_pton(AF_INET, target_.host.c_str(), &a.sin_addr);
      if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close();
        throw std::runtime_error("cannot connect to " + describe() + ": " + std::strerror(errno));
      }
    }
    timeval tv{120, 0};  // a wedged server fails the bench instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    in_.reset(fd_);
  }

  bool readReply(Reply& r, bool& keepAlive) {
    std::string line, name, value;
    if (!in_.readLine(line) || line.size() < 12) return false;
    r.status = std::atoi(line.c_str() + 9);
    long long length = -1;
    bool chunked = false;
    for (;;) {
      if (!in_.readLine(line)) return false;
      if (line.empty()) break;
      if (!splitHeader(line, name, value)) continue;
      if (name == "content-length") length = std::atoll(value.c_str());
      if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
      if (name == "connection" && (value == "close" || value == "Close")) keepAlive = false;
    }
    if (chunked) {
      for (;;) {
        if (!in_.readLine(line)) return false;
        auto size = std::strtoull(line.c_str(), nullptr, 16);
        if (size == 0) {
          if (!in_.readLine(line)) return false;  // trailer end
          break;
        }
        if (!in_.readBytes(size, r.body) || !in_.readLine(line)) return false;
      }
    } else if (length >= 0) {
      if (!in_.readBytes(static_cast<std::size_t>(length), r.body)) return false;
    } else {
      in_.readToEnd(r.body);
      keepAlive = false;
    }
    return true;
  }

  Target target_;
  int fd_ = -1;
  Reader in_;
};

// The floor under any proxy, for the overhead benchmark: takes each request from a Unix socket and
// makes the same request upstream on a kept-alive connection. One blocking thread per client
// connection (the cheapest shape for a handful of clients), HTTP framing only, nothing parsed,
// stored or streamed. What it adds over calling the emulator directly is the hop itself; what
// oasisd adds over it is oasisd's own work.
class Relay {
 public:
  Relay(std::string socketPath, Target upstream) : path_(std::move(socketPath)), upstream_(std::move(upstream)) {
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    ::unlink(path_.c_str());
    if (listen_ < 0 || ::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 64) != 0) {
      std::string why = std::strerror(errno);
      if (listen_ >= 0) ::close(listen_);
      throw std::runtime_error("relay: cannot listen on " + path_ + ": " + why);
    }
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~Relay() {
    ::shutdown(listen_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : workers_) t.join();
    ::close(listen_);
    ::unlink(path_.c_str());
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  Target target() const { return Target{path_, "", 0}; }

 private:
  void acceptLoop() {
    for (;;) {
      int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));  // out of descriptors for now
          continue;
        }
        return;  // shut down
      }
      std::lock_guard lock(mu_);
      open_.push_back(fd);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    Reader in;
    in.reset(fd);
    Conn up(upstream_);
    std::string line, name, value;
    for (;;) {
      if (!in.readLine(line) || line.empty()) break;
      auto sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
      if (sp1 == std::string::npos || sp2 == std::string::npos) break;
      std::string method = line.substr(0, sp1), path = line.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t length = 0;
      for (;;) {
        if (!in.readLine(line)) return finish(fd);
        if (line.empty()) break;
        if (splitHeader(line, name, value) && name == "content-length") length = std::strtoull(value.c_str(), nullptr, 10);
      }
      std::string body;
      if (length && !in.readBytes(length, body)) break;
      Reply r;
      try {
        r = up.request(method, path, body);
      } catch (const std::exception& e) {
        r.status = 502;
        r.body = std::string("{\"error\":\"relay: ") + e.what() + "\"}";
      }
      std::string out = "HTTP/1.1 " + std::to_string(r.status) + " Relayed\r\nContent-Type: application/json\r\n" +
                        "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
      if (!writeAll(fd, out)) break;
    }
    finish(fd);
  }

  void finish(int fd) {
    std::lock_guard lock(mu_);
    std::erase(open_, fd);
    ::close(fd);
  }

  std::string path_;
  Target upstream_;
  int listen_ = -1;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> workers_;
};

// A child process in its own process group, with its output in a log file. The destructor
// kills the group (oasisd's managed serve and runners die with it through their own
// parent-death signal, and the group kill is the backstop).
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& logPath) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::setpgid(0, 0);
#ifdef __linux__
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
      int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execve(args[0], args.data(), environ);
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // SIGTERM (oasisd stops its managed serve), bounded wait, then SIGKILL to the group.
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
        ::kill(-pid_, SIGKILL);
        pid_ = -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

inline std::uint16_t freeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// /proc/PID/status field in kB (VmRSS, VmHWM); 0 if unreadable.
inline long procStatusKb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  return 0;
}

inline long long fileSize(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : 0;
}

}  // namespace oasis::bench
