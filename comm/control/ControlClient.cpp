#include "comm/control/ControlClient.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <chrono>

#include "comm/control/Crypto.h"
#include "models/core/Error.h"

namespace dptrain {

namespace asio = boost::asio;
using asio::ip::tcp;

struct ControlClient::Impl {
  asio::io_context io;
  tcp::socket socket{io};
};

namespace {

// Reads one frame (blocking) with the client's own size bound; throws on any violation.
FrameType read_frame(tcp::socket& socket, std::vector<uint8_t>& payload, size_t bound) {
  uint8_t header[frame_header_bytes];
  asio::read(socket, asio::buffer(header));
  FrameHeader h = FrameHeader::decode(header);
  if (h.magic != frame_magic || !known_frame_type(h.type))
    throw ProtocolError("the coordinator sent a malformed frame");
  if (h.length > bound) throw ProtocolError("the coordinator sent an oversized frame");
  payload.resize(static_cast<size_t>(h.length));
  if (h.length) asio::read(socket, asio::buffer(payload));
  return static_cast<FrameType>(h.type);
}

}  // namespace

ControlClient::ControlClient(const std::string& host, uint16_t port, const std::string& token, const HelloInfo& hello,
                             double connect_timeout_s, Receiver receiver)
    : impl_(std::make_unique<Impl>()), receiver_(std::move(receiver)) {
  const std::string where = host + ":" + std::to_string(port);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(connect_timeout_s);
  boost::system::error_code ec;
  tcp::resolver resolver(impl_->io);
  while (true) {
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (!ec) {
      impl_->socket.close(ec);
      asio::connect(impl_->socket, endpoints, ec);
      if (!ec) break;
    }
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(ErrorKind::peer, "cannot reach the coordinator at " + where + ": " + ec.message());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  impl_->socket.set_option(tcp::no_delay(true), ec);
  try {
    std::vector<uint8_t> payload;
    if (read_frame(impl_->socket, payload, 1 << 16) != FrameType::challenge)
      throw ProtocolError("expected a challenge");
    ByteReader r(payload.data(), payload.size());
    uint32_t version = r.u32();
    const uint8_t* nonce = r.take(32);
    if (version != protocol_version)
      throw Error(ErrorKind::bad_input, "the coordinator at " + where + " speaks protocol version " +
                                            std::to_string(version) + ", this dptrain " +
                                            std::to_string(protocol_version));
    Digest mac = hmac_sha256(token, nonce, 32);
    ByteWriter w;
    w.u32(protocol_version).i32(hello.rank).i32(hello.world).i32(hello.pid).raw(mac.data(), mac.size()).str(hello.host);
    send(FrameType::hello, w.bytes());
    FrameType answer = read_frame(impl_->socket, payload, 1 << 16);
    if (answer == FrameType::reject) {
      ByteReader rr(payload.data(), payload.size());
      throw Error(ErrorKind::bad_input, "the coordinator at " + where + " refused this worker: " + rr.str());
    }
    if (answer != FrameType::welcome) throw ProtocolError("expected welcome");
  } catch (const ProtocolError& e) {
    throw Error(ErrorKind::peer, "control channel to " + where + ": " + e.what());
  } catch (const boost::system::system_error& e) {
    throw Error(ErrorKind::peer, "control channel to " + where + " closed during the handshake: " + e.what());
  }
  connected_ = true;
  reader_ = std::thread([this] { read_loop(); });
}

ControlClient::~ControlClient() {
  boost::system::error_code ignored;
  impl_->socket.shutdown(tcp::socket::shutdown_both, ignored);
  if (reader_.joinable()) reader_.join();
  impl_->socket.close(ignored);
}

void ControlClient::send(FrameType type, const std::vector<uint8_t>& payload) {
  uint8_t header[frame_header_bytes];
  FrameHeader h;
  h.type = static_cast<uint16_t>(type);
  h.length = payload.size();
  h.encode(header);
  std::lock_guard<std::mutex> lock(send_mu_);
  boost::system::error_code ec;
  std::array<asio::const_buffer, 2> bufs{asio::buffer(header), asio::buffer(payload)};
  asio::write(impl_->socket, bufs, ec);
  if (ec) {
    connected_ = false;
    throw Error(ErrorKind::peer,
                std::string("lost the coordinator while sending ") + frame_type_name(h.type) + ": " + ec.message());
  }
}

void ControlClient::read_loop() {
  std::vector<uint8_t> payload;
  try {
    while (true) {
      FrameType type = read_frame(impl_->socket, payload, size_t{1} << 30);
      ByteReader r(payload.data(), payload.size());
      if (receiver_) receiver_(type, r);
    }
  } catch (const std::exception&) {
    // Closed (normally at shutdown) or broken: later sends report it.
  }
  connected_ = false;
}

}  // namespace dptrain
