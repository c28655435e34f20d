// A worker's end of the control channel: connects (retrying while the coordinator starts),
// answers the challenge with an HMAC of the job token, then sends frames from any thread and
// hands received frames to a callback on its reader thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/control/ControlServer.h"
#include "comm/control/Frame.h"

namespace dptrain {

class ControlClient {
 public:
  using Receiver = std::function<void(FrameType type, ByteReader& payload)>;

  // Throws a peer error when no coordinator answers within connect_timeout_s, and a bad-input
  // error when it refuses us (wrong token or version), quoting its reason.
  ControlClient(const std::string& host, uint16_t port, const std::string& token, const HelloInfo& hello,
                double connect_timeout_s, Receiver receiver);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Sends one frame (thread-safe, blocking); throws a peer error if the connection is gone.
  void send(FrameType type, const std::vector<uint8_t>& payload);
  bool connected() const { return connected_.load(); }

 private:
  void read_loop();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Receiver receiver_;
  std::mutex send_mu_;
  std::atomic<bool> connected_{false};
  std::thread reader_;
};

}  // namespace dptrain
