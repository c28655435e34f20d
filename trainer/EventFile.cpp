#include "trainer/EventFile.h"

#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "models/core/Error.h"
#include "storage/AtomicFile.h"

namespace dptrain {

namespace {

// Protocol-buffer wire format: a key is (field << 3) | type; 0 varint, 1 fixed64, 2 bytes, 5 fixed32.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <class T>
void put_fixed(std::string& out, T v) {
  char bytes[sizeof v];
  std::memcpy(bytes, &v, sizeof v);  // little-endian hosts (x86, the only ones we build for)
  out.append(bytes, sizeof v);
}

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_varint(out, (field << 3) | 2);
  put_varint(out, bytes.size());
  out += bytes;
}

// Reads a varint at `at`; false when the data ends first.
bool get_varint(const std::string& in, size_t& at, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && at < in.size(); shift += 7) {
    const auto b = static_cast<uint8_t>(in[at++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Walks the fields of a message: fn(field, type, varint or fixed value, bytes). False on bad data.
template <class Fn>
bool for_each_field(const std::string& in, Fn&& fn) {
  size_t at = 0;
  while (at < in.size()) {
    uint64_t key = 0, v = 0;
    if (!get_varint(in, at, key)) return false;
    const uint32_t field = static_cast<uint32_t>(key >> 3), type = static_cast<uint32_t>(key & 7);
    std::string bytes;
    if (type == 0) {
      if (!get_varint(in, at, v)) return false;
    } else if (type == 1 || type == 5) {
      const size_t n = type == 1 ? 8 : 4;
      if (at + n > in.size()) return false;
      std::memcpy(&v, in.data() + at, n);
      at += n;
    } else if (type == 2) {
      uint64_t n = 0;
      if (!get_varint(in, at, n) || n > in.size() - at) return false;
      bytes.assign(in, at, static_cast<size_t>(n));
      at += static_cast<size_t>(n);
    } else {
      return false;
    }
    fn(field, type, v, bytes);
  }
  return true;
}

bool is_event_file(const std::filesystem::path& p) {
  return p.filename().string().rfind("events.out.tfevents.", 0) == 0;
}

}  // namespace

uint32_t tfrecord_masked_crc(const void* data, size_t n) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;  // CRC32C (Castagnoli)
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "host";
  ::gethostname(host, sizeof host - 1);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = (std::filesystem::path(dir) /
           ("events.out.tfevents." + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) +
            "." + host + "." + std::to_string(::getpid())))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) fail_input(path_ + ": cannot create the TensorBoard event file: " + std::strerror(errno));
  std::string first;
  put_varint(first, (1 << 3) | 1);  // wall_time
  put_fixed(first, std::chrono::duration<double>(now).count());
  put_bytes(first, 3, "brain.Event:2");  // file_version
  write_record(first);
  flush();
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::write_record(const std::string& data) {
  const uint64_t n = data.size();
  const uint32_t len_crc = tfrecord_masked_crc(&n, sizeof n), data_crc = tfrecord_masked_crc(data.data(), data.size());
  std::fwrite(&n, sizeof n, 1, file_);
  std::fwrite(&len_crc, sizeof len_crc, 1, file_);
  std::fwrite(data.data(), 1, data.size(), file_);
  std::fwrite(&data_crc, sizeof data_crc, 1, file_);
}

void EventFileWriter::scalar(const std::string& tag, int64_t step, double wall_time, float value) {
  std::string v;  // Summary.Value { tag = 1; simple_value = 2 }
  put_bytes(v, 1, tag);
  put_varint(v, (2 << 3) | 5);
  put_fixed(v, value);
  std::string summary;  // Summary { repeated Value value = 1 }
  put_bytes(summary, 1, v);
  event_.clear();  // Event { wall_time = 1; step = 2; summary = 5 }
  put_varint(event_, (1 << 3) | 1);
  put_fixed(event_, wall_time);
  put_varint(event_, 2 << 3);
  put_varint(event_, static_cast<uint64_t>(step));
  put_bytes(event_, 5, summary);
  write_record(event_);
}

void EventFileWriter::flush() {
  if (std::fflush(file_) != 0) fail_input(path_ + ": cannot write the TensorBoard event file: " + std::strerror(errno));
}

std::vector<ScalarEvent> read_event_file(const std::string& path, bool stop_at_damage) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_input(path + ": cannot read the event file");
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<ScalarEvent> events;
  size_t at = 0;
  auto damaged = [&](const std::string& why) {
    if (!stop_at_damage) fail_input(path + ": " + why + " at byte " + std::to_string(at));
  };
  while (at < all.size()) {
    uint64_t n = 0;
    uint32_t len_crc = 0, data_crc = 0;
    if (all.size() - at < 12) {
      damaged("a truncated frame");
      break;
    }
    std::memcpy(&n, all.data() + at, 8);
    std::memcpy(&len_crc, all.data() + at + 8, 4);
    if (len_crc != tfrecord_masked_crc(&n, 8) || n > all.size() - at - 16) {
      damaged("a bad frame length");
      break;
    }
    ScalarEvent e;
    e.raw.assign(all, at + 12, static_cast<size_t>(n));
    std::memcpy(&data_crc, all.data() + at + 12 + n, 4);
    if (data_crc != tfrecord_masked_crc(e.raw.data(), e.raw.size())) {
      damaged("a bad data CRC");
      break;
    }
    at += 16 + static_cast<size_t>(n);
    const bool ok = for_each_field(e.raw, [&](uint32_t field, uint32_t type, uint64_t v, const std::string& bytes) {
      if (field == 1 && type == 1) std::memcpy(&e.wall_time, &v, 8);
      if (field == 2 && type == 0) e.step = static_cast<int64_t>(v);
      if (field == 5 && type == 2)
        for_each_field(bytes, [&](uint32_t f, uint32_t t, uint64_t, const std::string& value) {
          if (f == 1 && t == 2)
            for_each_field(value, [&](uint32_t g, uint32_t u, uint64_t x, const std::string& b) {
              if (g == 1 && u == 2) e.tag = b;
              if (g == 2 && u == 5) {
                const auto bits = static_cast<uint32_t>(x);
                std::memcpy(&e.value, &bits, 4);
              }
            });
        });
    });
    if (!ok) {
      damaged("an event that is not a protocol buffer");
      break;
    }
    events.push_back(std::move(e));
  }
  return events;
}

int64_t drop_events_after(const std::string& dir, int64_t step) {
  if (!std::filesystem::is_directory(dir)) return 0;
  int64_t dropped = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || !is_event_file(entry.path())) continue;
    const std::string path = entry.path().string();
    const std::vector<ScalarEvent> events = read_event_file(path, true);
    std::string kept;
    int64_t drop = 0;
    for (const ScalarEvent& e : events) {
      if (e.step > step) {
        ++drop;
        continue;
      }
      const uint64_t n = e.raw.size();
      const uint32_t len_crc = tfrecord_masked_crc(&n, 8), data_crc = tfrecord_masked_crc(e.raw.data(), n);
      kept.append(reinterpret_cast<const char*>(&n), 8).append(reinterpret_cast<const char*>(&len_crc), 4);
      kept.append(e.raw).append(reinterpret_cast<const char*>(&data_crc), 4);
    }
    if (drop == 0 && kept.size() == entry.file_size()) continue;
    write_atomically(path, [&](const std::string& tmp) {
      std::ofstream out(tmp, std::ios::binary);
      out.write(kept.data(), static_cast<std::streamsize>(kept.size()));
      if (!out) fail_input(tmp + ": cannot rewrite the event file");
    });
    dropped += drop;
  }
  return dropped;
}

}  // namespace dptrain
