// The vhost-user socket: one message at a time, with the fds that come
// with it (SCM_RIGHTS), and the replies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ports/vhost/protocol.h"

namespace unetmap::vhost {

// The largest payload any message this device takes can have (a memory
// table of 8 regions is 264 bytes; configuration space reads 256 + 12).
constexpr uint32_t kMaxPayload = 4096;

struct Message {
  MsgHeader h{};
  uint8_t payload[kMaxPayload];
  std::vector<int> fds;  // the caller's to close (Device::handle takes them)
};

// How long a message may take to arrive whole once its first byte has, and
// a reply to be taken: a front end that stalls halfway is cut off, so it
// can never hang the backend.
constexpr int kMessageTimeoutMs = 1000;

// Read one message from a connected socket (nonblocking: the backend made
// it so). 0; ECONNRESET at end of file; ETIMEDOUT if it stalls halfway;
// or an errno value with *why (a truncated or oversized message: the
// connection is to be closed). fds beyond kMaxFds, or cut short by the
// kernel, are closed and make it fail.
int read_message(int sock, Message* m, std::string* why);
// One line about a message, for a debug log: its name and payload.
std::string describe_message(const MsgHeader& h, const uint8_t* payload, size_t nfds);
// Send a reply whole. 0 or errno.
int send_reply(int sock, const std::string& reply);

// A listening socket at path (a stale socket file there is replaced; any
// other file is refused). The fd, or -errno with *why.
int listen_at(const std::string& path, std::string* why);
// A connection to path, or -errno.
int connect_to(const std::string& path);

}  // namespace unetmap::vhost
