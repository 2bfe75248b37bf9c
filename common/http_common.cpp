// Endpoint parsing, query decoding and small helpers shared by the HTTP server and client.
#include <nlohmann/json.hpp>

#include "common/http.h"

namespace oasis::http {

Result<Endpoint> Endpoint::parse(std::string_view text) {
  std::string s(text);
  if (s.empty()) return Error("empty endpoint");
  if (s.rfind("unix:", 0) == 0) s = s.substr(5);
  if (!s.empty() && s[0] == '/') {
    if (s.size() > 100) return Error("unix socket path too long (max 100 bytes): " + s);
    return unixSocket(s);
  }
  std::string rest = s;
  bool explicitScheme = false;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
    explicitScheme = true;
  } else if (rest.rfind("https://", 0) == 0) {
    return Error("https endpoints are not supported: " + s);
  } else if (rest.find("://") != std::string::npos) {
    return Error("unsupported scheme in endpoint: " + s);
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  Endpoint e;
  e.kind = Kind::Tcp;
  std::string host = rest;
  std::string portText;
  if (!rest.empty() && rest[0] == '[') {  // [::1]:port
    auto close = rest.find(']');
    if (close == std::string::npos) return Error("unterminated IPv6 address in endpoint: " + s);
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Error("bad endpoint: " + s);
      portText = rest.substr(close + 2);
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    portText = rest.substr(colon + 1);
  }
  if (host.empty()) host = "127.0.0.1";
  if (host == "localhost") host = "127.0.0.1";
  e.host = host;
  if (portText.empty()) {
    e.port = explicitScheme ? 80 : 11434;
  } else {
    if (portText.size() > 5 || portText.find_first_not_of("0123456789") != std::string::npos)
      return Error("bad port in endpoint: " + s);
    int p = std::stoi(portText);
    if (p > 65535) return Error("port out of range in endpoint: " + s);
    e.port = static_cast<uint16_t>(p);
  }
  return e;
}

Endpoint Endpoint::unixSocket(std::string path) {
  Endpoint e;
  e.kind = Kind::Unix;
  e.path = std::move(path);
  return e;
}

Endpoint Endpoint::tcp(std::string host, uint16_t port) {
  Endpoint e;
  e.kind = Kind::Tcp;
  e.host = std::move(host);
  e.port = port;
  return e;
}

std::string Endpoint::toString() const {
  if (kind == Kind::Unix) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "http://[" + host + "]:" + std::to_string(port);
  return "http://" + host + ":" + std::to_string(port);
}

std::string Endpoint::hostHeader() const {
  // Ollama's allowedHostsMiddleware accepts loopback names; "localhost" is right for a Unix socket too.
  if (kind == Kind::Unix) return "localhost";
  return host + ":" + std::to_string(port);
}

std::string urlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> parseQuery(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    if (!part.empty()) {
      auto eq = part.find('=');
      if (eq == std::string_view::npos)
        out[urlDecode(part)] = "";
      else
        out[urlDecode(part.substr(0, eq))] = urlDecode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::string ServerRequest::header(const std::string& lowerName, std::string fallback) const {
  auto it = headers.find(lowerName);
  return it == headers.end() ? fallback : it->second;
}

std::string Response::header(const std::string& lowerName, std::string fallback) const {
  auto it = headers.find(lowerName);
  return it == headers.end() ? fallback : it->second;
}

std::string errorBody(std::string_view code, std::string_view message) {
  nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace oasis::http
