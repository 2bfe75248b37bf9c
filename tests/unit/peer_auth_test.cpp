// Who may use the control socket (daemon/daemon.h: peerAllowed, resolveGroup).
#include "catch.h"
#include "daemon/daemon.h"

using namespace oasis;

namespace {
http::PeerCredentials peer(unsigned uid, unsigned gid, std::vector<unsigned> groups = {}) {
  http::PeerCredentials p;
  p.known = true;
  p.uid = uid;
  p.gid = gid;
  p.groups = std::move(groups);
  return p;
}
}  // namespace

TEST_CASE("peer auth: own uid and root in, others out, unknown credentials out", "[security]") {
  CHECK(peerAllowed(peer(1000, 1000), 1000, std::nullopt));
  CHECK(peerAllowed(peer(0, 0), 1000, std::nullopt));
  CHECK_FALSE(peerAllowed(peer(1001, 1000), 1000, std::nullopt));
  CHECK_FALSE(peerAllowed(http::PeerCredentials{}, 1000, std::nullopt));  // no SO_PEERCRED: refused
}

TEST_CASE("peer auth: allow_group admits the primary or a supplementary group only", "[security]") {
  CHECK(peerAllowed(peer(1001, 555), 1000, 555u));
  CHECK(peerAllowed(peer(1001, 1001, {20, 555}), 1000, 555u));
  CHECK_FALSE(peerAllowed(peer(1001, 1001, {20, 21}), 1000, 555u));
#ifdef __linux__
  // The kernel's (empty) list is the truth: /etc/group membership does not count.
  CHECK_FALSE(peerAllowed(peer(1001, 1001), 1000, 555u));
#endif
}

TEST_CASE("peer auth: allow_group by gid or by name", "[security]") {
  auto byNumber = resolveGroup("4321");
  REQUIRE(byNumber.ok());
  CHECK(*byNumber == 4321u);
#ifdef __linux__
  auto root = resolveGroup("root");  // macOS calls gid 0 "wheel"
  REQUIRE(root.ok());
  CHECK(*root == 0u);
#endif
  auto missing = resolveGroup("no-such-group-oasis");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("no group named") != std::string::npos);
}
