#pragma once
// Small coroutine helpers for fake-ollama's single-threaded io_context.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>

#include "common/http.h"

namespace fake_ollama {

namespace net = boost::asio;

// A latch (set) or a broadcast wake-up (pulse) that coroutines can await. Built on a timer
// that never expires: cancelling it wakes every waiter.
class Event {
 public:
  explicit Event(net::any_io_executor exec) : timer_(exec) { timer_.expires_at(net::steady_timer::time_point::max()); }
  void set() {
    set_ = true;
    timer_.cancel();
  }
  void pulse() { timer_.cancel(); }  // wakes the current waiters; they re-check their condition
  bool isSet() const { return set_; }
  net::awaitable<void> wait() {
    if (set_) co_return;
    boost::system::error_code ec;
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }

 private:
  net::steady_timer timer_;
  bool set_ = false;
};

inline net::awaitable<void> sleepFor(std::chrono::nanoseconds d) {
  net::steady_timer t(co_await net::this_coro::executor);
  t.expires_after(d);
  boost::system::error_code ec;
  co_await t.async_wait(net::redirect_error(net::use_awaitable, ec));
}

// Calls onClose() if the client of `writer` disconnects before this guard is stopped or
// destroyed. This is how a handler blocked on something else (the runner's token stream)
// learns that its client went away: Ollama's request context is cancelled at that moment, and
// that is what drops the request's runner reference (ollama-behaviour.md §3 refCount).
class OnClientClose {
 public:
  template <typename F>
  OnClientClose(net::any_io_executor exec, oasis::http::ResponseWriter& writer, F onClose)
      : state_(std::make_shared<State>()) {
    state_->onClose = std::move(onClose);
    net::co_spawn(exec, watch(state_, writer), net::bind_cancellation_slot(state_->signal.slot(), net::detached));
  }
  ~OnClientClose() { stop(); }
  OnClientClose(const OnClientClose&) = delete;
  OnClientClose& operator=(const OnClientClose&) = delete;

  void stop() {
    if (state_->done) return;
    state_->done = true;
    state_->onClose = nullptr;
    state_->signal.emit(net::cancellation_type::terminal);
  }
  bool fired() const { return state_->fired; }

 private:
  struct State {
    bool done = false;
    bool fired = false;
    std::function<void()> onClose;
    net::cancellation_signal signal;
  };
  static net::awaitable<void> watch(std::shared_ptr<State> state, oasis::http::ResponseWriter& writer) {
    try {
      co_await writer.waitUntilClosed();
    } catch (...) {
    }
    if (state->done) co_return;  // stopped: `writer` may be gone, touch nothing
    state->done = true;
    state->fired = true;
    if (state->onClose) {
      auto f = std::move(state->onClose);
      f();
    }
  }
  std::shared_ptr<State> state_;
};

}  // namespace fake_ollama
