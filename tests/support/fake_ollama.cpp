// HeldStream's coroutines, compiled once for the test binary (see fake_ollama.h).
#include "support/fake_ollama.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace oasis::test {

struct HeldStream::Impl {
  net::io_context io;
  std::unique_ptr<http::LineStream> stream;

  net::awaitable<void> doOpen(http::Endpoint ep, http::Request req, http::StreamOptions opt, bool* done) {
    auto r = co_await http::openLineStream(io.get_executor(), ep, req, opt);
    if (r) stream = std::move(*r);
    *done = true;
  }
  net::awaitable<void> doNext(std::chrono::milliseconds timeout, std::optional<std::string>* out, bool* done) {
    auto r = co_await stream->nextLine(timeout);
    if (r && *r) *out = **r;
    *done = true;
  }
};

HeldStream::HeldStream() : impl_(std::make_unique<Impl>()) {}
HeldStream::~HeldStream() { close(); }

std::unique_ptr<HeldStream> HeldStream::open(const http::Endpoint& ep, const std::string& target,
                                             const std::string& body, std::chrono::milliseconds headTimeout) {
  auto hs = std::unique_ptr<HeldStream>(new HeldStream());
  http::Request req;
  req.method = "POST";
  req.target = target;
  req.body = body;
  http::StreamOptions opt;
  opt.headTimeout = headTimeout;
  bool done = false;
  net::co_spawn(hs->impl_->io, hs->impl_->doOpen(ep, req, opt, &done), net::detached);
  hs->impl_->io.run_for(headTimeout + std::chrono::seconds(5));
  if (!done || !hs->impl_->stream) return nullptr;
  return hs;
}

int HeldStream::status() const { return impl_->stream ? impl_->stream->head().status : 0; }

std::optional<std::string> HeldStream::nextLine(std::chrono::milliseconds timeout) {
  if (!impl_->stream) return std::nullopt;
  std::optional<std::string> out;
  bool done = false;
  impl_->io.restart();
  net::co_spawn(impl_->io, impl_->doNext(timeout, &out, &done), net::detached);
  impl_->io.run_for(timeout + std::chrono::seconds(5));
  return out;
}

void HeldStream::close() {
  if (impl_->stream) {
    impl_->stream->close();
    impl_->stream.reset();
    impl_->io.restart();
    impl_->io.poll();
  }
}

}  // namespace oasis::test
