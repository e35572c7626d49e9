#include "ports/nic/bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <vector>

namespace unetmap::nic {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// tcx attach points (kernel 6.6); Debian 12's headers predate them.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;
constexpr uint32_t kBeforeAll = 1u << 3;  // BPF_F_BEFORE, no relative program: first

// Offsets in the programs' context structures (linux/bpf.h, stable ABI).
constexpr int16_t kXdpRxQueue = offsetof(xdp_md, rx_queue_index);
constexpr int16_t kSkbMark = offsetof(__sk_buff, mark);

// Instruction builders.
bpf_insn mov_imm(uint8_t dst, int32_t imm) {
  return {BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm};
}
bpf_insn load_w(uint8_t dst, uint8_t src, int16_t off) {
  return {BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0};
}
bpf_insn store_w(uint8_t dst, uint8_t src, int16_t off) {
  return {BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0};
}
bpf_insn jne_imm(uint8_t dst, int32_t imm, int16_t off) {
  return {BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm};
}
bpf_insn call(int32_t helper) { return {BPF_JMP | BPF_CALL, 0, 0, 0, helper}; }
bpf_insn exit_insn() { return {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}; }
// A 64-bit immediate load of a map fd takes two instructions.
void load_map(std::vector<bpf_insn>* v, uint8_t dst, int map_fd) {
  v->push_back({BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, map_fd});
  v->push_back({0, 0, 0, 0, 0});
}

int load(bpf_prog_type type, const char* name, const std::vector<bpf_insn>& insns, Fd* out,
         std::string* why) {
  char log[4096] = "";
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .log_level = 1, .log_size = sizeof log, .log_buf = log);
  int fd = bpf_prog_load(type, name, "GPL", insns.data(), insns.size(), &opts);
  if (fd < 0) {
    int err = errno ? errno : -fd;
    *why = std::string("cannot load BPF program ") + name + ": " + strerror(err) +
           (err == EPERM ? " (needs CAP_BPF and CAP_NET_ADMIN)" : "") + (log[0] ? ": " : "") + log;
    return err;
  }
  *out = Fd(fd);
  return 0;
}

}  // namespace

int make_xdp_to_xsk(uint32_t nqueues, XskProgram* out, std::string* why) {
  int m = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "unetmap_xsks", 4, 4, nqueues, nullptr);
  if (m < 0) {
    int err = errno ? errno : -m;
    *why = std::string("cannot create the AF_XDP socket map: ") + strerror(err);
    return err;
  }
  out->map = Fd(m);
  std::vector<bpf_insn> p;
  p.push_back(load_w(BPF_REG_2, BPF_REG_1, kXdpRxQueue));
  load_map(&p, BPF_REG_1, m);
  p.push_back(mov_imm(BPF_REG_3, XDP_PASS));  // what to do when the queue has no socket
  p.push_back(call(BPF_FUNC_redirect_map));
  p.push_back(exit_insn());
  return load(BPF_PROG_TYPE_XDP, "unetmap_xsk", p, &out->prog, why);
}

int attach_xdp(int prog_fd, int ifindex, Fd* link, bool* native, std::string* why) {
  for (uint32_t mode : {uint32_t(XDP_FLAGS_DRV_MODE), uint32_t(XDP_FLAGS_SKB_MODE)}) {
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = mode);
    int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    if (fd >= 0) {
      *link = Fd(fd);
      *native = mode == XDP_FLAGS_DRV_MODE;
      return 0;
    }
    int err = errno;
    if (err == EBUSY || err == EEXIST) {
      *why = "the interface already has an XDP program (another process or tool holds it)";
      return EBUSY;
    }
    if (mode == XDP_FLAGS_SKB_MODE) {
      *why = std::string("cannot attach XDP: ") + strerror(err);
      return err;
    }
  }
  return EINVAL;
}

int join_xdp_to_xsk(int ifindex, XskProgram* out, Fd* link, std::string* why) {
  __u32 prog_id = 0;
  if (bpf_xdp_query_id(ifindex, 0, &prog_id) != 0 || prog_id == 0) return ENOENT;
  Fd prog(bpf_prog_get_fd_by_id(prog_id));
  bpf_prog_info pi{};
  __u32 map_id = 0, len = sizeof pi;
  pi.nr_map_ids = 1;
  pi.map_ids = reinterpret_cast<uintptr_t>(&map_id);
  if (!prog || bpf_obj_get_info_by_fd(prog.get(), &pi, &len) != 0 ||
      strcmp(pi.name, "unetmap_xsk") != 0 || map_id == 0) {
    *why = "the interface already has an XDP program (not unetmap's)";
    return EBUSY;
  }
  // The link that holds the program on this interface (ids are global; the
  // program id ties it to this namespace's interface).
  for (__u32 id = 0; bpf_link_get_next_id(id, &id) == 0;) {
    Fd l(bpf_link_get_fd_by_id(id));
    bpf_link_info li{};
    len = sizeof li;
    if (!l || bpf_obj_get_info_by_fd(l.get(), &li, &len) != 0) continue;
    if (li.type != BPF_LINK_TYPE_XDP || li.prog_id != prog_id) continue;
    out->map = Fd(bpf_map_get_fd_by_id(map_id));
    if (!out->map) break;
    out->prog = std::move(prog);
    *link = std::move(l);
    return 0;
  }
  *why = "the interface's unetmap XDP program is not held by a link";
  return EBUSY;
}

int make_redirect(int to_ifindex, bool ingress_with_mark, Fd* prog, std::string* why) {
  std::vector<bpf_insn> p;
  if (ingress_with_mark) {
    p.push_back(mov_imm(BPF_REG_2, int32_t(kInjectMark)));
    p.push_back(store_w(BPF_REG_1, BPF_REG_2, kSkbMark));
  }
  p.push_back(mov_imm(BPF_REG_1, to_ifindex));
  p.push_back(mov_imm(BPF_REG_2, ingress_with_mark ? BPF_F_INGRESS : 0));
  p.push_back(call(BPF_FUNC_redirect));
  p.push_back(exit_insn());
  return load(BPF_PROG_TYPE_SCHED_CLS, "unetmap_redir", p, prog, why);
}

int make_drop_unmarked(Fd* prog, std::string* why) {
  std::vector<bpf_insn> p;
  p.push_back(load_w(BPF_REG_2, BPF_REG_1, kSkbMark));
  p.push_back(jne_imm(BPF_REG_2, int32_t(kInjectMark), 4));
  p.push_back(mov_imm(BPF_REG_2, 0));
  p.push_back(store_w(BPF_REG_1, BPF_REG_2, kSkbMark));
  p.push_back(mov_imm(BPF_REG_0, TC_ACT_OK));
  p.push_back(exit_insn());
  p.push_back(mov_imm(BPF_REG_0, TC_ACT_SHOT));
  p.push_back(exit_insn());
  return load(BPF_PROG_TYPE_SCHED_CLS, "unetmap_drop", p, prog, why);
}

int make_drop_all(Fd* prog, std::string* why) {
  std::vector<bpf_insn> p = {mov_imm(BPF_REG_0, TC_ACT_SHOT), exit_insn()};
  return load(BPF_PROG_TYPE_SCHED_CLS, "unetmap_cut", p, prog, why);
}

int attach_tc(int prog_fd, int ifindex, Hook hook, bool first, Fd* link, std::string* why) {
  int type = hook == Hook::kIngress ? kTcxIngress : kTcxEgress;
  LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = first ? kBeforeAll : 0);
  int fd = bpf_link_create(prog_fd, ifindex, bpf_attach_type(type), &opts);
  if (fd < 0) {
    int err = errno;
    *why = std::string("cannot attach a tc program (tcx, Linux 6.6 or later): ") + strerror(err);
    return err;
  }
  *link = Fd(fd);
  return 0;
}

int filter_injected(int sock_fd) {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_MARK)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kInjectMark, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0),
      BPF_STMT(BPF_RET | BPF_K, 0x40000),
  };
  sock_fprog prog{sizeof code / sizeof code[0], code};
  return setsockopt(sock_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) ? errno : 0;
}

}  // namespace unetmap::nic
