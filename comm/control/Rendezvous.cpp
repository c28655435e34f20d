#include "comm/control/Rendezvous.h"

#include <unistd.h>

#include <chrono>

#include "models/core/Error.h"

namespace dptrain {

namespace {

constexpr size_t max_key_bytes = 1024;

std::vector<uint8_t> value_frame(const std::string& key, const std::vector<uint8_t>& value) {
  ByteWriter w;
  w.reserve(8 + key.size() + value.size());
  w.str(key).u64(value.size()).raw(value.data(), value.size());
  return w.take();
}

}  // namespace

RendezvousServer::RendezvousServer(const std::string& bind_address, uint16_t port, const std::string& token, int world)
    : peers_(static_cast<size_t>(world)) {
  ControlServer::Options o;
  o.bind_address = bind_address;
  o.port = port;
  o.token = token;
  // Gloo's address lists grow with the world (about 200 bytes a rank).
  o.max_bulk_frame_bytes = size_t{256} * static_cast<size_t>(world) + (size_t{1} << 16);
  server_ = std::make_unique<ControlServer>(o, *this, [](const std::string&) {});
}

RendezvousServer::~RendezvousServer() { server_.reset(); }

void RendezvousServer::on_connect(uint64_t session, const HelloInfo& hello) {
  std::lock_guard<std::mutex> lock(mu_);
  // A refused rank hears why (a reject frame) before its connection closes.
  auto refuse = [&](const std::string& why) {
    ByteWriter w;
    w.str(why);
    server_->send(session, FrameType::reject, w.take());
    server_->close(session, why);
  };
  if (hello.world != static_cast<int>(peers_.size())) {
    refuse("this rank says the world is " + std::to_string(hello.world) + " ranks, rank 0 says " +
           std::to_string(peers_.size()) + " (WORLD_SIZE or SLURM_STEP_NUM_TASKS differ between ranks)");
    return;
  }
  PeerState& p = peers_[static_cast<size_t>(hello.rank)];
  if (p.connected) {
    refuse("rank " + std::to_string(hello.rank) + " is connected already (two processes with the same RANK?)");
    return;
  }
  rank_of_[session] = hello.rank;
  p.connected = p.seen = true;
  p.host = hello.host;
}

void RendezvousServer::on_frame(uint64_t session, FrameType type, ByteReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  auto who = rank_of_.find(session);
  if (who == rank_of_.end()) throw ProtocolError("frame from a session that was refused");
  switch (type) {
    case FrameType::store_set: {
      std::string key = r.str(max_key_bytes);
      uint64_t n = r.u64();
      const uint8_t* data = r.take(n);
      r.expect_end();
      auto& value = values_[key];
      value.assign(data, data + n);
      auto waiting = waiting_.find(key);
      if (waiting != waiting_.end()) {
        for (uint64_t s : waiting->second) server_->send(s, FrameType::store_value, value_frame(key, value));
        waiting_.erase(waiting);
      }
      return;
    }
    case FrameType::store_get: {
      std::string key = r.str(max_key_bytes);
      r.expect_end();
      auto found = values_.find(key);
      if (found != values_.end())
        server_->send(session, FrameType::store_value, value_frame(key, found->second));
      else
        waiting_[key].push_back(session);
      return;
    }
    case FrameType::progress: {
      PeerState& p = peers_[static_cast<size_t>(who->second)];
      p.sequence = r.u64();
      p.step = r.i64();
      r.expect_end();
      return;
    }
    case FrameType::peers_query: {
      r.expect_end();
      ByteWriter w;
      w.u32(static_cast<uint32_t>(peers_.size()));
      for (const PeerState& p : peers_)
        w.u8(p.connected ? 1 : 0).u8(p.seen ? 1 : 0).u64(p.sequence).i64(p.step).str(p.host);
      server_->send(session, FrameType::peers_state, w.take());
      return;
    }
    default:
      throw ProtocolError(std::string("the rendezvous does not take ") + frame_type_name(static_cast<uint16_t>(type)));
  }
}

void RendezvousServer::on_disconnect(uint64_t session, const std::string&) {
  std::lock_guard<std::mutex> lock(mu_);
  auto who = rank_of_.find(session);
  if (who == rank_of_.end()) return;
  peers_[static_cast<size_t>(who->second)].connected = false;
  rank_of_.erase(who);
  for (auto& [key, sessions] : waiting_) std::erase(sessions, session);
}

RendezvousClient::RendezvousClient(const std::string& host, uint16_t port, const std::string& token, int rank,
                                   int world, double connect_timeout_s)
    : where_(host + ":" + std::to_string(port)) {
  HelloInfo hello;
  hello.rank = rank;
  hello.world = world;
  hello.pid = static_cast<int>(::getpid());
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  hello.host = name;
  try {
    client_ = std::make_unique<ControlClient>(host, port, token, hello, connect_timeout_s,
                                              [this](FrameType type, ByteReader& r) { on_frame(type, r); });
  } catch (const Error& e) {
    throw Error(e.kind(),
                std::string("rendezvous with rank 0 at ") + where_ + " (MASTER_ADDR:MASTER_PORT): " + e.what());
  }
}

RendezvousClient::~RendezvousClient() { client_.reset(); }

void RendezvousClient::on_frame(FrameType type, ByteReader& r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (type == FrameType::store_value) {
    std::string key = r.str(max_key_bytes);
    uint64_t n = r.u64();
    const auto* data = reinterpret_cast<const char*>(r.take(n));
    values_[key].assign(data, data + n);
  } else if (type == FrameType::peers_state) {
    uint32_t n = r.u32();
    std::vector<PeerState> peers(n);
    for (PeerState& p : peers) {
      p.connected = r.u8() != 0;
      p.seen = r.u8() != 0;
      p.sequence = r.u64();
      p.step = r.i64();
      p.host = r.str(256);
    }
    peers_ = std::move(peers);
    ++peers_answers_;
  } else if (type == FrameType::reject) {
    refused_ = r.str(1024);
  }
  cv_.notify_all();
}

void RendezvousClient::set(const std::string& key, const std::vector<char>& value) {
  ByteWriter w;
  w.str(key).u64(value.size()).raw(value.data(), value.size());
  client_->send(FrameType::store_set, w.bytes());
}

bool RendezvousClient::has(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.count(key) > 0;
}

std::vector<char> RendezvousClient::get(const std::string& key, double timeout_s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto found = values_.find(key);
    if (found != values_.end()) return found->second;
  }
  ByteWriter w;
  w.str(key);
  client_->send(FrameType::store_get, w.bytes());
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
  std::unique_lock<std::mutex> lock(mu_);
  while (!values_.count(key)) {
    if (!refused_.empty())
      throw Error(ErrorKind::bad_input, "the rendezvous at " + where_ + " refused us: " + refused_);
    if (!client_->connected())
      throw Error(ErrorKind::peer, "lost the rendezvous at " + where_ + " (rank 0) while waiting for '" + key + "'");
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (!values_.count(key) && std::chrono::steady_clock::now() >= deadline)
      throw Error(ErrorKind::peer, "rendezvous at " + where_ + ": '" + key + "' was not set within " +
                                       std::to_string(static_cast<int>(timeout_s)) + " s (a rank never started?)");
  }
  return values_[key];
}

void RendezvousClient::report(uint64_t sequence, int64_t step) {
  ByteWriter w;
  w.u64(sequence).i64(step);
  client_->send(FrameType::progress, w.bytes());
}

std::vector<PeerState> RendezvousClient::peers(double timeout_s) {
  uint64_t asked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    asked = peers_answers_;
  }
  client_->send(FrameType::peers_query, {});
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::duration<double>(timeout_s),
                    [&] { return peers_answers_ > asked || !client_->connected(); }) ||
      peers_answers_ == asked)
    throw Error(ErrorKind::peer, "the rendezvous at " + where_ + " (rank 0) does not answer");
  return peers_;
}

}  // namespace dptrain
