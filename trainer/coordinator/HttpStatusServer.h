// A small HTTP/1.1 server (Boost.Beast) for the coordinator's GET /status, /metrics, /history and
// the dashboard page at /, on its own thread. One request per connection, bounded request size,
// loopback by default.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace dptrain {

class HttpStatusServer {
 public:
  // handler(target, content_type_out) returns the body, or "" for 404.
  using Handler = std::function<std::string(const std::string& target, std::string& content_type)>;
  HttpStatusServer(const std::string& bind_address, uint16_t port, Handler handler);
  ~HttpStatusServer();
  HttpStatusServer(const HttpStatusServer&) = delete;
  HttpStatusServer& operator=(const HttpStatusServer&) = delete;
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dptrain
