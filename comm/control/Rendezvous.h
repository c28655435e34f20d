// The rendezvous of ranks that no MPI launcher connected (docs/design.md "Communicators"): rank 0
// serves a key-value table on the control channel (the coordinator's protocol: challenge, HMAC of
// the job token, bounded frames) at MASTER_ADDR:MASTER_PORT; every rank, rank 0 included,
// connects as a client. Gloo exchanges its pair addresses through it. The connection stays open
// for the job: each rank posts how far it got (collective sequence number and step, five times a
// second, off the training thread), and the server notices a rank whose process is gone, so a
// failed or stalled collective names the ranks at fault as the MPI backend's watchdog does.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/control/ControlClient.h"
#include "comm/control/ControlServer.h"

namespace dptrain {

// What the rendezvous knows of one rank.
struct PeerState {
  bool connected = false;  // its rendezvous connection is open (false: never came, or gone)
  bool seen = false;       // it connected at some point
  uint64_t sequence = 0;   // the last collective it reported entering
  int64_t step = -1;       // and that collective's training step
  std::string host;
};

class RendezvousServer final : public ControlServer::Handler {
 public:
  // Listens on bind_address:port (bad input naming them when it cannot) for `world` ranks.
  RendezvousServer(const std::string& bind_address, uint16_t port, const std::string& token, int world);
  ~RendezvousServer() override;
  uint16_t port() const { return server_->port(); }

  void on_connect(uint64_t session, const HelloInfo& hello) override;
  void on_frame(uint64_t session, FrameType type, ByteReader& payload) override;
  void on_disconnect(uint64_t session, const std::string& reason) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<uint8_t>> values_;
  std::map<std::string, std::vector<uint64_t>> waiting_;  // sessions that asked for a key not yet set
  std::map<uint64_t, int> rank_of_;
  std::vector<PeerState> peers_;
  std::unique_ptr<ControlServer> server_;  // last: its I/O thread stops before the table goes
};

class RendezvousClient {
 public:
  // Connects (retrying while rank 0 starts its server) within connect_timeout_s; a peer error
  // naming host:port when nothing answers, bad input when the token is refused.
  RendezvousClient(const std::string& host, uint16_t port, const std::string& token, int rank, int world,
                   double connect_timeout_s);
  ~RendezvousClient();

  void set(const std::string& key, const std::vector<char>& value);
  // The value of `key`, waiting until some rank sets it; a peer error after timeout_s.
  std::vector<char> get(const std::string& key, double timeout_s);
  bool has(const std::string& key);
  // Tells the server how far this rank got (cheap; no reply).
  void report(uint64_t sequence, int64_t step);
  // Every rank's state as the server sees it; a peer error if the server does not answer.
  std::vector<PeerState> peers(double timeout_s);
  std::string where() const { return where_; }

 private:
  void on_frame(FrameType type, ByteReader& r);
  std::string where_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<char>> values_;
  std::vector<PeerState> peers_;
  uint64_t peers_answers_ = 0;
  std::string refused_;  // rank 0's reason, when it refused this rank
  std::unique_ptr<ControlClient> client_;
};

}  // namespace dptrain
