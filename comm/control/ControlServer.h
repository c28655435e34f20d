// The coordinator's end of the control channel: a Boost.Asio TCP server on its own I/O thread.
// Each connection must first answer a challenge — the protocol version and an HMAC of a fresh
// nonce keyed by the job's secret token — before any other frame is accepted; unauthenticated,
// malformed, oversized or out-of-order frames close that connection (logged, without the token)
// and never disturb the others. Listens on loopback unless given another address.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/control/Frame.h"

namespace dptrain {

// Who a connected worker says it is (after it proved the token).
struct HelloInfo {
  int rank = 0, world = 1, pid = 0;
  std::string host;
  std::string peer;  // address:port as the server sees it
};

class ControlServer {
 public:
  struct Options {
    std::string bind_address = "127.0.0.1";
    uint16_t port = 0;  // 0: any free port (see port())
    std::string token;
    size_t max_frame_bytes = size_t{64} << 10;
    size_t max_bulk_frame_bytes = size_t{64} << 20;
    double handshake_timeout_s = 10.0;
    // Run the I/O thread at a lower priority (a coordinator beside training ranks).
    bool background = false;
  };
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void on_connect(uint64_t session, const HelloInfo& hello) = 0;
    // Runs on the I/O thread: keep it short. A ProtocolError closes the session.
    virtual void on_frame(uint64_t session, FrameType type, ByteReader& payload) = 0;
    virtual void on_disconnect(uint64_t session, const std::string& reason) = 0;
  };
  using Logger = std::function<void(const std::string&)>;

  // Binds and starts serving; throws a bad-input error naming the address when it cannot bind.
  ControlServer(const Options& options, Handler& handler, Logger log);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  uint16_t port() const;
  // Thread-safe; frames to one session go out in order.
  void send(uint64_t session, FrameType type, std::vector<uint8_t> payload);
  void broadcast(FrameType type, const std::vector<uint8_t>& payload);
  void close(uint64_t session, const std::string& reason);
  // Connections closed for a protocol violation or failed authentication so far.
  uint64_t refused() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dptrain
