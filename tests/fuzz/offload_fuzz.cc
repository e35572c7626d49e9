// Fuzzes what a virtio-net header makes the packet engine do to a frame
// (vnet_frames, vnet_finish): the header and the frame come from whoever
// sends on a VALE port with a header, a VM through its vhost-user port
// among them, and VALE's mismatch path and the vhost-user backend run this
// code on them.
//
// Input: [mtu: 2 bytes] [header: 10 bytes] [frame: the rest].
//
// Checks, besides no crash/UB/leak: vnet_finish() makes exactly the frames
// vnet_frames() announced (none when it refuses, at most 256); a frame
// that asks for no segmentation comes out whole, its length kept; a
// segment or fragment carries an IP packet of at most mtu bytes.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/engine.h"
#include "fuzz_env.h"

using namespace unetmap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 12 || size > 12 + 65535 + 18) return -1;
  const uint32_t mtu = 68 + (uint32_t(data[0] | data[1] << 8) % 9000);
  const VnetHdr h = read_vnet_hdr(data + 2);
  std::vector<uint8_t> frame(data + 12, data + size);
  const uint32_t len = uint32_t(frame.size());
  const uint32_t n = vnet_frames(h, frame.data(), len, mtu);
  FUZZ_CHECK(n <= 256, std::to_string(n));
  uint32_t made = 0;
  const bool gso = (h.gso_type & ~kGsoEcn) != kGsoNone;
  const bool ok = vnet_finish(h, frame.data(), len, mtu, [&](uint8_t* p, uint32_t l) {
    made++;
    FUZZ_CHECK(p != nullptr || l == 0);
    if (!gso) {
      FUZZ_CHECK(l == len, std::to_string(l) + " of " + std::to_string(len));
      return;
    }
    FUZZ_CHECK(l >= 14, std::to_string(l));
    const uint32_t l3 = (p[12] == 0x81 && p[13] == 0x00) ? 18 : 14;
    FUZZ_CHECK(l <= l3 + mtu, std::to_string(l) + " > " + std::to_string(l3 + mtu));
  });
  FUZZ_CHECK(ok == (n != 0), std::to_string(n));
  FUZZ_CHECK(made == n, std::to_string(made) + " made, " + std::to_string(n) + " announced");
  if (ok && !gso) FUZZ_CHECK(n == 1);
  return 0;
}
