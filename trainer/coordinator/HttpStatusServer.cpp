#include "trainer/coordinator/HttpStatusServer.h"

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "models/core/Error.h"

namespace dptrain {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

struct HttpStatusServer::Impl {
  Handler handler;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;

  struct Connection : std::enable_shared_from_this<Connection> {
    explicit Connection(tcp::socket s, Impl& owner) : socket(std::move(s)), owner(owner) {}
    tcp::socket socket;
    Impl& owner;
    beast::flat_buffer buffer{8192};
    http::request_parser<http::empty_body> parser;
    http::response<http::string_body> response;

    void start() {
      parser.header_limit(8192);
      auto self = shared_from_this();
      http::async_read(socket, buffer, parser, [self](beast::error_code ec, size_t) {
        if (ec) return;
        self->respond(self->parser.get());
      });
    }

    void respond(const http::request<http::empty_body>& req) {
      response.version(req.version());
      response.keep_alive(false);
      response.set(http::field::server, "dptrain");
      std::string target(req.target());
      std::string type = "text/plain";
      std::string body;
      if (req.method() != http::verb::get && req.method() != http::verb::head) {
        response.result(http::status::method_not_allowed);
        body = "only GET\n";
      } else if (!(body = owner.handler(target, type)).empty()) {
        response.result(http::status::ok);
      } else {
        response.result(http::status::not_found);
        body = "not found: try /, /status, /history or /metrics\n";
      }
      response.set(http::field::content_type, type);
      response.body() = std::move(body);
      response.prepare_payload();
      auto self = shared_from_this();
      http::async_write(socket, response, [self](beast::error_code, size_t) {
        beast::error_code ignored;
        self->socket.shutdown(tcp::socket::shutdown_both, ignored);
      });
    }
  };

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) accept();
        return;
      }
      std::make_shared<Connection>(std::move(socket), *this)->start();
      accept();
    });
  }
};

HttpStatusServer::HttpStatusServer(const std::string& bind_address, uint16_t port, Handler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  beast::error_code ec;
  auto address = asio::ip::make_address(bind_address, ec);
  if (ec) fail_input("coordinator: '" + bind_address + "' is not an IP address");
  tcp::endpoint ep(address, port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    fail_input("coordinator: cannot serve HTTP on " + bind_address + ":" + std::to_string(port) + ": " + ec.message());
  impl_->accept();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

HttpStatusServer::~HttpStatusServer() {
  asio::post(impl_->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->io.stop();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t HttpStatusServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace dptrain
