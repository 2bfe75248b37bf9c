#pragma once
// Replies shared by the control API (daemon.cpp) and the trials API (trials.cpp), and the
// seconds-from-config -> milliseconds conversion both use for timers and timeouts.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "common/http.h"

namespace oasis {

inline std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000.0));
}

inline boost::asio::awaitable<void> sendJson(http::ResponseWriter& w, int status, const nlohmann::json& body) {
  std::string text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  co_await w.send(status, std::move(text), "application/json", {});
}

// The control API's error body: {"error": {"code", "message"}}.
inline boost::asio::awaitable<void> sendError(http::ResponseWriter& w, int status, std::string code, std::string message) {
  std::string text = http::errorBody(code, message);
  co_await w.send(status, std::move(text), "application/json", {});
}

}  // namespace oasis
