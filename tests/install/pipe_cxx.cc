// Built against an installed unetmap with find_package(unetmap) alone
// (tests/scripts/install_test.sh): the C++ API (unetmap/netmap.hpp) over a
// pipe, every byte checked.  usage: pipe_cxx NAME COUNT
#include <unetmap/netmap.hpp>
#include <unetmap/unetmap.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pipe_cxx NAME COUNT\n");
    return 2;
  }
  const unsigned count = unsigned(atoi(argv[2]));
  std::string err;
  auto tx = unetmap::Port::open(std::string("netmap:") + argv[1] + "{0", &err);
  auto rx = unetmap::Port::open(std::string("netmap:") + argv[1] + "}0", &err);
  if (!tx || !rx) {
    fprintf(stderr, "pipe_cxx: %s\n", err.c_str());
    return 1;
  }
  unsigned sent = 0, got = 0;
  while (got < count) {
    unetmap::Ring t = tx.tx_ring(0), r = rx.rx_ring(0);
    for (; sent < count && t.space(); sent++) {
      netmap_slot& s = t.slot(t.cur());
      uint8_t* b = t.buf(s.buf_idx);
      s.len = uint16_t(64 + sent % 1400);
      for (unsigned k = 0; k < s.len; k++) b[k] = uint8_t(sent ^ k);
      t.advance();
    }
    tx.txsync();
    rx.rxsync();
    if (r.empty() && sent == count) {
      fprintf(stderr, "pipe_cxx: %u of %u frames arrived\n", got, count);
      return 1;
    }
    for (; !r.empty(); got++) {
      const netmap_slot& s = r.slot(r.cur());
      const uint8_t* b = r.buf(s.buf_idx);
      bool ok = s.len == 64 + got % 1400;
      for (unsigned k = 0; ok && k < s.len; k++) ok = b[k] == uint8_t(got ^ k);
      if (!ok) {
        fprintf(stderr, "pipe_cxx: frame %u differs\n", got);
        return 1;
      }
      r.advance();
    }
    rx.rxsync();
  }
  printf("pipe_cxx: %u frames checked\n", count);
  return 0;
}
