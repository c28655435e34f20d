#include "comm/control/Crypto.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "models/core/Error.h"

// The check macro for OpenSSL calls (docs/design.md rule 7). OpenSSL reports success with 1 (and
// RAND_bytes failure with 0 or -1), so anything else becomes an internal error carrying file:line
// and the messages OpenSSL queued; a call that returns a pointer is checked as `call != nullptr`.
#define DPT_OPENSSL(call)                                                                 \
  do {                                                                                    \
    if (static_cast<int>(call) != 1)                                                      \
      ::dptrain::fail_internal(::dptrain::error_origin(__FILE__, __LINE__) + #call ": " + \
                               ::dptrain::openssl_errors());                              \
  } while (0)

namespace dptrain {

namespace {

// The errors OpenSSL queued on this thread, oldest first; empties the queue.
std::string openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    out += (out.empty() ? "" : "; ") + std::string(text);
  }
  return out.empty() ? "OpenSSL queued no error" : out;
}

}  // namespace

Digest hmac_sha256(const std::string& key, const void* message, size_t bytes) {
  Digest out;
  unsigned int length = 0;
  DPT_OPENSSL(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), static_cast<const unsigned char*>(message),
                   bytes, out.data(), &length) != nullptr);
  DPT_ASSERT(length == out.size(), "HMAC-SHA256 gave " + std::to_string(length) + " bytes");
  return out;
}

void random_bytes(uint8_t* out, size_t bytes) { DPT_OPENSSL(RAND_bytes(out, static_cast<int>(bytes))); }

std::string make_job_token() {
  uint8_t bytes[32];
  random_bytes(bytes, sizeof bytes);
  return to_hex(bytes, sizeof bytes);
}

bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t bytes) { return CRYPTO_memcmp(a, b, bytes) == 0; }

std::string to_hex(const uint8_t* data, size_t bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * bytes);
  for (size_t i = 0; i < bytes; ++i) {
    s += digits[data[i] >> 4];
    s += digits[data[i] & 15];
  }
  return s;
}

}  // namespace dptrain
