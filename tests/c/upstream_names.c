/*
 * Every public name of netmap's API 14 headers that a netmap application
 * may use, with the size netmap gives it (Linux x86_64). Compiled at test
 * time (tests/compile_headers.cmake, MODE=upstream_names): a name missing
 * from unetmap's headers is an application that does not build.
 *
 * The sizes and values are interface facts measured on upstream netmap's
 * headers; tests/abi_test.cc checks the rest of the ABI.
 */
#define NETMAP_WITH_LIBS
#include <libnetmap.h>
#include <net/netmap.h>
#include <net/netmap_legacy.h>
#include <net/netmap_user.h>

#ifdef __cplusplus
#define SA static_assert
#else
#define SA _Static_assert
#endif

/* net/netmap.h */
SA(NETMAP_MAX_FRAGS == 64, "NETMAP_MAX_FRAGS");
SA(sizeof(struct nm_csb_atok) == 64, "nm_csb_atok");
SA(sizeof(struct nm_csb_ktoa) == 64, "nm_csb_ktoa");
SA(sizeof(struct nmreq_sync_kloop_start) == 8, "nmreq_sync_kloop_start");
SA(sizeof(struct nmreq_port_hdr) == 8, "nmreq_port_hdr");

/* net/netmap_user.h */
static const char upstream_device_name[] = NETMAP_DEVICE_NAME;
SA(sizeof(upstream_device_name) == sizeof("/dev/netmap"), "NETMAP_DEVICE_NAME");

/* net/netmap_legacy.h */
SA(NETMAP_POOLS_INFO_GET == 13, "NETMAP_POOLS_INFO_GET");
SA(sizeof(struct netmap_pools_info) == 48, "netmap_pools_info");
SA(NM_IFRDATA_LEN == 256, "NM_IFRDATA_LEN");
SA(sizeof(struct nm_ifreq) == 272, "nm_ifreq");
SA(NIOCCONFIG == 0xc1106996, "NIOCCONFIG");

/* libnetmap.h: the option parser */
SA(NMREQ_OPT_MAXKEYS == 16, "NMREQ_OPT_MAXKEYS");
SA(NMREQ_OPTK_ALLOWEMPTY == 1 && NMREQ_OPTK_MUSTSET == 2 && NMREQ_OPTK_DEFAULT == 4,
   "NMREQ_OPTK_*");
SA(NMREQ_OPTF_DISABLED == 1 && NMREQ_OPTF_ALLOWEMPTY == 2, "NMREQ_OPTF_*");
SA(sizeof(struct nmreq_opt_key) == 16, "nmreq_opt_key");
SA(sizeof(struct nmreq_opt_parser) == 304, "nmreq_opt_parser");
SA(sizeof(struct nmreq_parse_ctx) == 144, "nmreq_parse_ctx");

int upstream_names_compiled(void);
