// The few BPF programs NIC ports need, built from raw instructions at run
// time (no compiler, no object files), and attached through BPF links so
// that the kernel detaches them when the last fd of the link closes: a
// process that dies leaves the interface as it found it.
//
//   xdp_to_xsk     XDP: send a frame to the AF_XDP socket of its rx queue,
//                  or pass it to the host stack when that queue has none.
//   redirect       tc: hand the packet to another device, on its transmit
//                  side (host stack output -> the host ring's tap) or on its
//                  receive side with a mark (host ring input -> the stack,
//                  as if received on the NIC).
//   drop_unmarked  tc ingress: drop what the wire brings (the AF_PACKET
//                  rings already have a copy), pass what the host ring
//                  injected.
//   drop_all       tc egress: the stack's output while the NIC rings are
//                  bound and the host rings are not (netmap would queue it
//                  on the unread host ring).
#pragma once

#include <cstdint>
#include <string>

namespace unetmap::nic {

// The skb mark of frames a host tx ring injects into the stack.
constexpr uint32_t kInjectMark = 0x6e6d6170;  // "nmap"

// An owned fd (closed on destruction).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A map from rx queue index to AF_XDP socket, with the XDP program that
// uses it. Empty on failure, with *why.
struct XskProgram {
  Fd map, prog;
};
int make_xdp_to_xsk(uint32_t nqueues, XskProgram* out, std::string* why);
// Attach an XDP program to ifindex through a link (driver mode when the
// driver has it, else generic). *native tells which.
int attach_xdp(int prog_fd, int ifindex, Fd* link, bool* native, std::string* why);
// The interface already runs another process's xdp_to_xsk program: take
// its map and a hold on its link (the program stays attached until every
// holder is gone). ENOENT if nothing is attached, EBUSY if it is not ours.
int join_xdp_to_xsk(int ifindex, XskProgram* out, Fd* link, std::string* why);

// tc programs, attached with tcx links (kernel 6.6 or later).
enum class Hook { kIngress, kEgress };
int make_redirect(int to_ifindex, bool ingress_with_mark, Fd* prog, std::string* why);
int make_drop_unmarked(Fd* prog, std::string* why);
int make_drop_all(Fd* prog, std::string* why);
// first: run before the programs already attached (else after them).
int attach_tc(int prog_fd, int ifindex, Hook hook, bool first, Fd* link, std::string* why);

// Classic BPF socket filter for AF_PACKET: refuse frames the host ring
// injected (they carry kInjectMark).
int filter_injected(int sock_fd);

}  // namespace unetmap::nic
