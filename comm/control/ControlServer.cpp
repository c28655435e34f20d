#include "comm/control/ControlServer.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <thread>

#include "comm/control/BackgroundPriority.h"
#include "comm/control/Crypto.h"
#include "models/core/Error.h"

namespace dptrain {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::vector<uint8_t> encode_frame(FrameType type, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(frame_header_bytes + payload.size());
  FrameHeader h;
  h.type = static_cast<uint16_t>(type);
  h.length = payload.size();
  h.encode(out.data());
  std::copy(payload.begin(), payload.end(), out.begin() + frame_header_bytes);
  return out;
}

// Frame types only the server sends.
bool server_only(uint16_t type) {
  auto t = static_cast<FrameType>(type);
  return t == FrameType::challenge || t == FrameType::welcome || t == FrameType::reject ||
         t == FrameType::checkpoint_done || t == FrameType::stop || t == FrameType::store_value ||
         t == FrameType::peers_state;
}

}  // namespace

struct ControlServer::Impl {
  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl& server, tcp::socket s, uint64_t id)
        : owner(server), socket(std::move(s)), id(id), timer(socket.get_executor()) {}
    Impl& owner;
    tcp::socket socket;
    uint64_t id;
    asio::steady_timer timer;
    uint8_t header[frame_header_bytes] = {};
    std::vector<uint8_t> payload;
    std::deque<std::vector<uint8_t>> out;
    uint8_t nonce[32] = {};
    bool authenticated = false, closing = false;
    HelloInfo hello;
    std::string peer;
  };

  Options options;
  Handler& handler;
  Logger log;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::map<uint64_t, std::shared_ptr<Session>> sessions;
  uint64_t next_id = 1;
  std::atomic<uint64_t> refused{0};
  std::thread thread;

  Impl(const Options& o, Handler& h, Logger l) : options(o), handler(h), log(std::move(l)) {}

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) accept();
        return;
      }
      auto s = std::make_shared<Session>(*this, std::move(socket), next_id++);
      boost::system::error_code pe;
      auto ep = s->socket.remote_endpoint(pe);
      s->peer = pe ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
      sessions[s->id] = s;
      start(s);
      accept();
    });
  }

  void start(const std::shared_ptr<Session>& s) {
    try {
      random_bytes(s->nonce, sizeof s->nonce);
    } catch (const std::exception& e) {  // no nonce, no challenge: this connection only is refused
      log("control: closed " + s->peer + ": " + e.what());
      return drop(s, e.what(), false);
    }
    ByteWriter w;
    w.u32(protocol_version).raw(s->nonce, sizeof s->nonce);
    write(s, encode_frame(FrameType::challenge, w.take()));
    s->timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(options.handshake_timeout_s)));
    s->timer.async_wait([this, s](boost::system::error_code ec) {
      if (!ec && !s->authenticated) drop(s, "no authentication within the handshake timeout", true);
    });
    read_header(s);
  }

  void read_header(const std::shared_ptr<Session>& s) {
    asio::async_read(s->socket, asio::buffer(s->header), [this, s](boost::system::error_code ec, size_t) {
      if (ec) return drop(s, ec == asio::error::eof ? "connection closed by the peer" : ec.message(), false);
      FrameHeader h = FrameHeader::decode(s->header);
      if (h.magic != frame_magic) return drop(s, "bad frame magic (not a dptrain control client?)", true);
      if (!known_frame_type(h.type)) return drop(s, "unknown frame type " + std::to_string(h.type), true);
      if (server_only(h.type)) return drop(s, std::string("a worker may not send ") + frame_type_name(h.type), true);
      size_t bound = bulk_frame_type(static_cast<FrameType>(h.type)) && s->authenticated ? options.max_bulk_frame_bytes
                                                                                         : options.max_frame_bytes;
      if (h.length > bound)
        return drop(s,
                    std::string(frame_type_name(h.type)) + " frame of " + std::to_string(h.length) +
                        " bytes exceeds the bound of " + std::to_string(bound),
                    true);
      if (!s->authenticated && h.type != static_cast<uint16_t>(FrameType::hello))
        return drop(s, std::string(frame_type_name(h.type)) + " frame before authentication", true);
      if (s->authenticated && h.type == static_cast<uint16_t>(FrameType::hello)) return drop(s, "a second hello", true);
      s->payload.resize(static_cast<size_t>(h.length));
      asio::async_read(
          s->socket, asio::buffer(s->payload), [this, s, type = h.type](boost::system::error_code ec2, size_t) {
            if (ec2) return drop(s, "connection lost inside a frame: " + ec2.message(), false);
            ByteReader r(s->payload.data(), s->payload.size());
            try {
              if (!s->authenticated) {
                if (!authenticate(s, r)) return;
              } else {
                handler.on_frame(s->id, static_cast<FrameType>(type), r);
              }
            } catch (const ProtocolError& e) {
              return drop(s, std::string("malformed ") + frame_type_name(type) + " frame: " + e.what(), true);
            } catch (const std::exception& e) {
              return drop(s, std::string("error handling ") + frame_type_name(type) + ": " + e.what(), true);
            }
            if (!s->closing) read_header(s);
          });
    });
  }

  bool authenticate(const std::shared_ptr<Session>& s, ByteReader& r) {
    uint32_t version = r.u32();
    HelloInfo hello;
    hello.rank = r.i32();
    hello.world = r.i32();
    hello.pid = r.i32();
    const uint8_t* mac = r.take(32);
    hello.host = r.str(256);
    r.expect_end();
    hello.peer = s->peer;
    if (version != protocol_version) {
      reject(s, "protocol version " + std::to_string(version) + " is not the coordinator's " +
                    std::to_string(protocol_version) + " (mixed dptrain versions?)");
      return false;
    }
    Digest expect = hmac_sha256(options.token, s->nonce, sizeof s->nonce);
    if (!constant_time_equal(expect.data(), mac, expect.size())) {
      reject(s, "authentication failed (wrong job token)");
      return false;
    }
    if (hello.world < 1 || hello.rank < 0 || hello.rank >= hello.world) {
      reject(s, "impossible rank " + std::to_string(hello.rank) + " of " + std::to_string(hello.world));
      return false;
    }
    s->authenticated = true;
    s->hello = hello;
    s->timer.cancel();
    write(s, encode_frame(FrameType::welcome, {}));
    handler.on_connect(s->id, hello);
    return true;
  }

  void reject(const std::shared_ptr<Session>& s, const std::string& reason) {
    ++refused;
    log("control: refused " + s->peer + ": " + reason);
    ByteWriter w;
    w.str(reason);
    write(s, encode_frame(FrameType::reject, w.take()));
    s->closing = true;  // closed once the reject is written
  }

  void write(const std::shared_ptr<Session>& s, std::vector<uint8_t> frame) {
    bool idle = s->out.empty();
    s->out.push_back(std::move(frame));
    if (idle) write_next(s);
  }

  void write_next(const std::shared_ptr<Session>& s) {
    asio::async_write(s->socket, asio::buffer(s->out.front()), [this, s](boost::system::error_code ec, size_t) {
      if (ec) return drop(s, "write failed: " + ec.message(), false);
      s->out.pop_front();
      if (!s->out.empty()) return write_next(s);
      if (s->closing) drop(s, "", false);
    });
  }

  // Closes a session (once); `violation` counts and logs it as a refusal.
  void drop(const std::shared_ptr<Session>& s, const std::string& reason, bool violation) {
    if (!sessions.count(s->id)) return;
    sessions.erase(s->id);
    if (violation) {  // logged before the socket closes, so whoever sees the close finds the line
      ++refused;
      log("control: closed " + s->peer + (s->authenticated ? " (rank " + std::to_string(s->hello.rank) + ")" : "") +
          ": " + reason);
    }
    boost::system::error_code ignored;
    s->timer.cancel();
    s->socket.shutdown(tcp::socket::shutdown_both, ignored);
    s->socket.close(ignored);
    if (s->authenticated) handler.on_disconnect(s->id, reason.empty() ? "closed" : reason);
  }
};

ControlServer::ControlServer(const Options& options, Handler& handler, Logger log)
    : impl_(std::make_unique<Impl>(options, handler, std::move(log))) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options.bind_address, ec);
  if (ec) fail_input("coordinator: '" + options.bind_address + "' is not an IP address");
  tcp::endpoint ep(address, options.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    fail_input("coordinator: cannot listen on " + options.bind_address + ":" + std::to_string(options.port) + ": " +
               ec.message());
  impl_->accept();
  impl_->thread = std::thread([this, background = options.background] {
    if (background) lower_this_thread_priority();
    impl_->io.run();
  });
}

ControlServer::~ControlServer() {
  asio::post(impl_->io, [this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    for (auto& [id, s] : impl_->sessions) {
      s->timer.cancel();
      s->socket.close(ignored);
    }
    impl_->sessions.clear();
    impl_->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t ControlServer::port() const { return impl_->acceptor.local_endpoint().port(); }

uint64_t ControlServer::refused() const { return impl_->refused.load(); }

void ControlServer::send(uint64_t session, FrameType type, std::vector<uint8_t> payload) {
  auto frame = std::make_shared<std::vector<uint8_t>>(encode_frame(type, payload));
  asio::post(impl_->io, [this, session, frame] {
    auto it = impl_->sessions.find(session);
    if (it != impl_->sessions.end()) impl_->write(it->second, std::move(*frame));
  });
}

void ControlServer::broadcast(FrameType type, const std::vector<uint8_t>& payload) {
  auto frame = std::make_shared<std::vector<uint8_t>>(encode_frame(type, payload));
  asio::post(impl_->io, [this, frame] {
    for (auto& [id, s] : impl_->sessions)
      if (s->authenticated) impl_->write(s, *frame);
  });
}

void ControlServer::close(uint64_t session, const std::string& reason) {
  asio::post(impl_->io, [this, session, reason] {
    auto it = impl_->sessions.find(session);
    if (it != impl_->sessions.end()) impl_->drop(it->second, reason, false);
  });
}

}  // namespace dptrain
