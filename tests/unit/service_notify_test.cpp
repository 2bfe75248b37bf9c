// systemd readiness notifications (daemon/service_notify.h): $NOTIFY_SOCKET parsing, and the
// datagrams reaching a real socket, path and abstract.
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <string>

#include "catch.h"
#include "daemon/service_notify.h"
#include "support/notify_listener.h"
#include "test_support.h"

using namespace oasis;
using oasis::test::NotifyListener;


TEST_CASE("NOTIFY_SOCKET: a path, an abstract name, and what is refused", "[notify]") {
  auto path = parseNotifySocket("/run/user/1000/systemd/notify");
  REQUIRE(path);
  CHECK(std::string(path->addr.sun_path) == "/run/user/1000/systemd/notify");
  CHECK(path->length == offsetof(sockaddr_un, sun_path) + 30);  // the path and its NUL

  auto abstract = parseNotifySocket("@/org/freedesktop/systemd1/notify/123");
  REQUIRE(abstract);
  CHECK(abstract->addr.sun_path[0] == '\0');
  CHECK(std::string(abstract->addr.sun_path + 1, 36) == "/org/freedesktop/systemd1/notify/123");
  CHECK(abstract->length == offsetof(sockaddr_un, sun_path) + 37);  // exact, no terminator

  for (auto [value, says] : {std::pair{"", "empty"}, {"relative/notify", "neither an absolute path"},
                             {"@", "names no abstract socket"}}) {
    auto bad = parseNotifySocket(value);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find(says) != std::string::npos);
  }
  auto tooLong = parseNotifySocket("/" + std::string(200, 'x'));
  REQUIRE_FALSE(tooLong);
  CHECK(tooLong.error().message.find("201 bytes") != std::string::npos);
}

#ifdef __linux__
TEST_CASE("ServiceNotifier: datagrams reach a path socket and an abstract one", "[notify]") {
  test::TempDir dir;
  auto path = parseNotifySocket(dir.file("notify"));
  REQUIRE(path);
  NotifyListener onPath(*path);
  ServiceNotifier toPath(*path);
  CHECK(toPath.enabled());
  REQUIRE(toPath.send("READY=1\nSTATUS=serving"));
  CHECK(onPath.next() == "READY=1\nSTATUS=serving");

  auto abstract = parseNotifySocket("@oasisd-notify-test-" + std::to_string(::getpid()));
  REQUIRE(abstract);
  NotifyListener onAbstract(*abstract);
  REQUIRE(ServiceNotifier(*abstract).send("STOPPING=1"));
  CHECK(onAbstract.next() == "STOPPING=1");

  // Nobody listening any more: an error that says so, not a hang or a crash.
  auto gone = parseNotifySocket(dir.file("nobody"));
  REQUIRE(gone);
  auto failed = ServiceNotifier(*gone).send("READY=1");
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message.find("notify systemd") != std::string::npos);
}
#endif

TEST_CASE("ServiceNotifier: without NOTIFY_SOCKET it does nothing, and it takes the variable away", "[notify]") {
  ::unsetenv("NOTIFY_SOCKET");
  auto none = ServiceNotifier::fromEnvironment();
  CHECK_FALSE(none.enabled());
  CHECK(none.send("READY=1"));

  test::TempDir dir;
  ::setenv("NOTIFY_SOCKET", dir.file("notify").c_str(), 1);
  auto some = ServiceNotifier::fromEnvironment();
  CHECK(some.enabled());
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);  // children (a managed serve) never see it

  ::setenv("NOTIFY_SOCKET", "not-a-path", 1);
  CHECK_FALSE(ServiceNotifier::fromEnvironment().enabled());
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
}
