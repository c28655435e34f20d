#include "comm/control/Frame.h"

namespace dptrain {

bool known_frame_type(uint16_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::challenge:
    case FrameType::hello:
    case FrameType::welcome:
    case FrameType::reject:
    case FrameType::heartbeat:
    case FrameType::metrics:
    case FrameType::goodbye:
    case FrameType::checkpoint_begin:
    case FrameType::checkpoint_slice:
    case FrameType::checkpoint_end:
    case FrameType::checkpoint_done:
    case FrameType::stop:
    case FrameType::schedule:
    case FrameType::store_set:
    case FrameType::store_get:
    case FrameType::store_value:
    case FrameType::progress:
    case FrameType::peers_query:
    case FrameType::peers_state:
      return true;
  }
  return false;
}

bool bulk_frame_type(FrameType type) {
  return type == FrameType::checkpoint_begin || type == FrameType::checkpoint_slice || type == FrameType::schedule ||
         type == FrameType::store_set || type == FrameType::store_value || type == FrameType::peers_state;
}

const char* frame_type_name(uint16_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::challenge:
      return "challenge";
    case FrameType::hello:
      return "hello";
    case FrameType::welcome:
      return "welcome";
    case FrameType::reject:
      return "reject";
    case FrameType::heartbeat:
      return "heartbeat";
    case FrameType::metrics:
      return "metrics";
    case FrameType::goodbye:
      return "goodbye";
    case FrameType::checkpoint_begin:
      return "checkpoint_begin";
    case FrameType::checkpoint_slice:
      return "checkpoint_slice";
    case FrameType::checkpoint_end:
      return "checkpoint_end";
    case FrameType::checkpoint_done:
      return "checkpoint_done";
    case FrameType::stop:
      return "stop";
    case FrameType::schedule:
      return "schedule";
    case FrameType::store_set:
      return "store_set";
    case FrameType::store_get:
      return "store_get";
    case FrameType::store_value:
      return "store_value";
    case FrameType::progress:
      return "progress";
    case FrameType::peers_query:
      return "peers_query";
    case FrameType::peers_state:
      return "peers_state";
  }
  return "unknown";
}

void FrameHeader::encode(uint8_t out[frame_header_bytes]) const {
  std::memcpy(out, &magic, 4);
  std::memcpy(out + 4, &type, 2);
  std::memcpy(out + 6, &reserved, 2);
  std::memcpy(out + 8, &length, 8);
}

FrameHeader FrameHeader::decode(const uint8_t in[frame_header_bytes]) {
  FrameHeader h;
  std::memcpy(&h.magic, in, 4);
  std::memcpy(&h.type, in + 4, 2);
  std::memcpy(&h.reserved, in + 6, 2);
  std::memcpy(&h.length, in + 8, 8);
  return h;
}

}  // namespace dptrain
