// SPDX-License-Identifier: GPL-3.0-or-later
/* Copyright: (c) 2026, kbypass.xdp developers
 *
 * kbypass-fwd: the AF_XDP forwarder.
 *
 * The steering program (files/bpf/xdp_steer.c, attached by xdp_attach) owns the
 * interface; this process never loads XDP.  It opens the pinned xsks_map, binds one
 * AF_XDP socket per requested queue (libxdp, INHIBIT_PROG_LOAD), registers each socket
 * at key = queue id, and removes exactly those keys again on exit.
 *
 * Reading order: options, UMEM and sockets, the rx -> process -> tx -> completion loop,
 * the modes (rxdrop, echo, l2fwd, kernel), stats and shutdown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include "common.h"
#include "xsk_common.h"

enum mode { M_RXDROP, M_ECHO, M_L2FWD, M_KERNEL };
static const char *const mode_names[] = { "rxdrop", "echo", "l2fwd", "kernel" };
enum bind_req { B_AUTO, B_COPY, B_ZEROCOPY };
static const char *const bind_names[] = { "auto", "copy", "zerocopy" };

static struct config {
	const char *iface, *iface2, *netns, *pin_dir, *pin_dir2, *tap, *stats_file;
	enum mode mode;
	enum bind_req bind;
	int queues[KB_MAX_LIST], nqueues;
	int cpus[KB_MAX_LIST], ncpus;
	unsigned int batch, frame_size, frames, rx_ring, tx_ring, fill_ring, comp_ring;
	bool need_wakeup, busy_poll, json, quiet, csum_fix;
	bool multi_buffer; /* --multi-buffer: XDP_USE_SG, packets over several frames */
	unsigned int busy_poll_usec, busy_poll_budget, spin_usec, coalesce_usec;
	double duration, interval;
} cfg = {
	.mode = M_ECHO, .bind = B_AUTO, .batch = 64, .frame_size = 4096, .frames = 4096,
	.rx_ring = 2048, .tx_ring = 2048, .fill_ring = 4096, .comp_ring = 2048,
	.need_wakeup = true, .csum_fix = true, .busy_poll_usec = 20, .busy_poll_budget = 64,
	.coalesce_usec = 100,
	.interval = 1.0,
};

static volatile sig_atomic_t stop_flag;

/* ---------------------------------------------------------------------------------
 * Per-queue state.  A worker owns one UMEM and one (or, for l2fwd, two) sockets that
 * share it.  Frames not in any ring sit on the worker's free stack, so a frame is
 * always in exactly one place: free stack, fill, rx, tx or completion ring.
 * ------------------------------------------------------------------------------- */
struct counters {
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	uint64_t dropped;   /* no TX slot / TAP busy: dropped by us */
	uint64_t invalid;   /* frames echo/kernel could not parse (malformed): dropped */
	/* syscalls by kind (as xdpsock -a): waiting for RX (poll, the --coalesce-usec
	 * nanosleep, or recvfrom when busy polling), waking the driver for the fill ring,
	 * kicking TX (sendto) */
	uint64_t rx_poll, fill_wakeup, tx_kick;
	uint64_t csum_fixed; /* UDP checksums completed (CHECKSUM_PARTIAL from a veth peer) */
	uint64_t rx_descs, tx_descs; /* --multi-buffer only (else equal to the packets) */
};

struct port {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx, comp;
	struct xsk_ring_prod tx, fill;
	int fd, map_fd, ifindex;
	bool registered;
	unsigned int tx_outstanding; /* submitted to TX, not yet seen in completion */
	unsigned int fill_target;
	const char *ifname;
};

/* Cache-line aligned, counters on a line of their own: with several queues, one
 * worker's writes never invalidate another worker's hot fields (false sharing). */
#define KB_CACHELINE 64
struct worker {
	int queue, cpu;
	pthread_t thread;
	struct kb_umem umem;
	struct port ports[2];
	int nports;
	uint64_t *free_stack;
	unsigned int nfree;
	uint8_t *tx_eop; /* --multi-buffer: per frame, 1 = last descriptor of a TX packet */
	bool zerocopy;
	bool busy;  /* the last pass carried packets (--coalesce-usec) */
	int tap_fd; /* kernel mode: this worker's own TAP queue (no shared fd) */
	/* written by the worker, read (racy but atomic per word) by main */
	struct counters c __attribute__((aligned(KB_CACHELINE)));
} __attribute__((aligned(KB_CACHELINE)));

static struct worker workers[KB_MAX_LIST];
static int nworkers;
static int tap_fds[KB_MAX_LIST]; /* kernel mode: one TAP queue per worker */
static int ntap;
static unsigned char tap_mac[ETH_ALEN];
static char tap_name[IFNAMSIZ];

/* ---------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------- */
static void usage(FILE *f)
{
	fprintf(f,
"usage: kbypass-fwd --iface IF [--iface2 IF2] --mode rxdrop|echo|l2fwd|kernel\n"
"         [--netns NS] [--pin-dir DIR] [--pin-dir2 DIR] [--queues 0,1] [--cpus 0,1]\n"
"         [--bind auto|copy|zerocopy]\n"
"         [--batch 64] [--frame-size 4096] [--frames 4096]\n"
"         [--rx-ring 2048] [--tx-ring 2048] [--fill-ring 4096] [--comp-ring 2048]\n"
"         [--no-need-wakeup] [--busy-poll] [--busy-poll-usec 20] [--busy-poll-budget 64]\n"
"         [--spin-usec 0] [--coalesce-usec 100]\n"
"         [--tap NAME] [--duration SEC] [--interval SEC] [--json] [--stats-file PATH]\n"
"         [--quiet] [--no-csum-fix] [--multi-buffer]\n"
"The steering program must already be attached to IF with its maps pinned in\n"
"--pin-dir (default " KB_PIN_ROOT "/<netns or init_net>/<IF>).\n"
"--multi-buffer binds with XDP_USE_SG: packets larger than a frame (jumbo MTU) arrive\n"
"and leave as several descriptors.  Exit codes: 2 bad input, 3 XDP_USE_SG refused.\n");
}

static int lookup(const char *const *names, int n, const char *v, const char *opt)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], v))
			return i;
	kb_die("%s: unknown value '%s'", opt, v);
}

static bool is_pow2(unsigned int v)
{
	return v && !(v & (v - 1));
}

static unsigned int ring_opt(const char *opt, const char *v)
{
	unsigned int r = (unsigned int)kb_parse_u64(opt, v, 64, 32768);

	if (!is_pow2(r))
		kb_die("%s: ring size must be a power of two, got %u", opt, r);
	return r;
}

static void parse_args(int argc, char **argv)
{
	enum { O_IFACE2 = 256, O_PIN, O_PIN2, O_BIND, O_FSIZE, O_FRAMES, O_RXR,
	       O_TXR, O_FILLR, O_COMPR, O_NOWAKE, O_BP, O_BPUSEC, O_BPBUDGET, O_TAP, O_DUR,
	       O_INT, O_JSON, O_SFILE, O_QUIET, O_NETNS, O_QUEUES, O_CPUS, O_BATCH, O_NOCSUM,
	       O_SPIN, O_COALESCE, O_MB };
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "iface2", required_argument, NULL, O_IFACE2 },
		{ "mode", required_argument, NULL, 'm' },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "pin-dir", required_argument, NULL, O_PIN },
		{ "pin-dir2", required_argument, NULL, O_PIN2 },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "bind", required_argument, NULL, O_BIND },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "frame-size", required_argument, NULL, O_FSIZE },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "rx-ring", required_argument, NULL, O_RXR },
		{ "tx-ring", required_argument, NULL, O_TXR },
		{ "fill-ring", required_argument, NULL, O_FILLR },
		{ "comp-ring", required_argument, NULL, O_COMPR },
		{ "no-need-wakeup", no_argument, NULL, O_NOWAKE },
		{ "busy-poll", no_argument, NULL, O_BP },
		{ "busy-poll-usec", required_argument, NULL, O_BPUSEC },
		{ "busy-poll-budget", required_argument, NULL, O_BPBUDGET },
		{ "spin-usec", required_argument, NULL, O_SPIN },
		{ "coalesce-usec", required_argument, NULL, O_COALESCE },
		{ "tap", required_argument, NULL, O_TAP },
		{ "duration", required_argument, NULL, O_DUR },
		{ "interval", required_argument, NULL, O_INT },
		{ "json", no_argument, NULL, O_JSON },
		{ "stats-file", required_argument, NULL, O_SFILE },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "no-csum-fix", no_argument, NULL, O_NOCSUM },
		{ "multi-buffer", no_argument, NULL, O_MB },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	int c;

	cfg.queues[0] = 0;
	cfg.nqueues = 1;
	while ((c = getopt_long(argc, argv, "i:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': cfg.iface = optarg; break;
		case O_IFACE2: cfg.iface2 = optarg; break;
		case 'm': cfg.mode = (enum mode)lookup(mode_names, 4, optarg, "--mode"); break;
		case O_NETNS: cfg.netns = optarg; break;
		case O_PIN: cfg.pin_dir = optarg; break;
		case O_PIN2: cfg.pin_dir2 = optarg; break;
		case O_QUEUES:
			cfg.nqueues = kb_parse_list(optarg, cfg.queues, KB_MAX_LIST);
			if (cfg.nqueues <= 0)
				kb_die("--queues: expected a list like 0,1 or 0-3 without duplicates, got '%s'", optarg);
			break;
		case O_CPUS:
			cfg.ncpus = kb_parse_list(optarg, cfg.cpus, KB_MAX_LIST);
			if (cfg.ncpus <= 0)
				kb_die("--cpus: expected a list like 0,1 without duplicates, got '%s'", optarg);
			break;
		case O_BIND: cfg.bind = (enum bind_req)lookup(bind_names, 3, optarg, "--bind"); break;
		case O_BATCH: cfg.batch = (unsigned int)kb_parse_u64("--batch", optarg, 1, 1024); break;
		case O_FSIZE:
			cfg.frame_size = (unsigned int)kb_parse_u64("--frame-size", optarg, 2048, 4096);
			if (!is_pow2(cfg.frame_size))
				kb_die("--frame-size: must be 2048 or 4096 (aligned UMEM chunks), got %u", cfg.frame_size);
			break;
		case O_FRAMES:
			cfg.frames = (unsigned int)kb_parse_u64("--frames", optarg, 256, 1u << 20);
			break;
		case O_RXR: cfg.rx_ring = ring_opt("--rx-ring", optarg); break;
		case O_TXR: cfg.tx_ring = ring_opt("--tx-ring", optarg); break;
		case O_FILLR: cfg.fill_ring = ring_opt("--fill-ring", optarg); break;
		case O_COMPR: cfg.comp_ring = ring_opt("--comp-ring", optarg); break;
		case O_NOWAKE: cfg.need_wakeup = false; break;
		case O_BP: cfg.busy_poll = true; break;
		case O_BPUSEC: cfg.busy_poll_usec = (unsigned int)kb_parse_u64("--busy-poll-usec", optarg, 0, 1000000); break;
		case O_BPBUDGET: cfg.busy_poll_budget = (unsigned int)kb_parse_u64("--busy-poll-budget", optarg, 1, 65535); break;
		case O_SPIN: cfg.spin_usec = (unsigned int)kb_parse_u64("--spin-usec", optarg, 0, 10000); break;
		case O_COALESCE: cfg.coalesce_usec = (unsigned int)kb_parse_u64("--coalesce-usec", optarg, 0, 1000); break;
		case O_TAP:
			if (!*optarg || strlen(optarg) >= IFNAMSIZ || strchr(optarg, '/'))
				kb_die("--tap: '%s' is not a valid interface name (1-15 characters, no '/')", optarg);
			cfg.tap = optarg;
			break;
		case O_DUR: cfg.duration = kb_parse_double("--duration", optarg, 0, 1e9); break;
		case O_INT: cfg.interval = kb_parse_double("--interval", optarg, 0.05, 3600); break;
		case O_JSON: cfg.json = true; break;
		case O_SFILE: cfg.stats_file = optarg; break;
		case O_QUIET: cfg.quiet = true; break;
		case O_NOCSUM: cfg.csum_fix = false; break;
		case O_MB: cfg.multi_buffer = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc)
		kb_die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!cfg.iface)
		kb_die("--iface is required (see --help)");
	if (strlen(cfg.iface) >= IFNAMSIZ)
		kb_die("--iface: '%s' is longer than 15 characters", cfg.iface);
	if (cfg.mode == M_L2FWD && !cfg.iface2)
		kb_die("--mode l2fwd needs --iface2 (the interface to transmit on)");
	if (cfg.mode != M_L2FWD && cfg.iface2)
		kb_die("--iface2 is only used with --mode l2fwd");
	if (cfg.iface2 && strlen(cfg.iface2) >= IFNAMSIZ)
		kb_die("--iface2: '%s' is longer than 15 characters", cfg.iface2);
	if (cfg.tap && cfg.mode != M_KERNEL)
		kb_die("--tap is only used with --mode kernel");
	if (cfg.netns && (strchr(cfg.netns, '/') || !*cfg.netns))
		kb_die("--netns: '%s' is not a namespace name", cfg.netns);
	if (cfg.batch > cfg.rx_ring || cfg.batch > cfg.tx_ring)
		kb_die("--batch %u is larger than the RX/TX ring", cfg.batch);
	if (cfg.frames < 2 * cfg.batch)
		kb_die("--frames %u must be at least twice --batch", cfg.frames);
}

/* ---------------------------------------------------------------------------------
 * UMEM and sockets
 * ------------------------------------------------------------------------------- */
static int open_xsks_map(const char *dir, const char *ifname, bool required)
{
	char path[PATH_MAX];
	int fd;

	if (dir)
		snprintf(path, sizeof(path), "%s/xsks_map", dir);
	else
		snprintf(path, sizeof(path), KB_PIN_ROOT "/%s/%s/xsks_map",
			 cfg.netns ? cfg.netns : "init_net", ifname);
	fd = bpf_obj_get(path);
	if (fd < 0 && required)
		kb_die("cannot open pinned xsks_map %s: %s. Attach the steering program to %s "
		       "first (kbypass.xdp.xdp_attach) or pass --pin-dir", path, strerror(errno),
		       ifname);
	if (fd < 0)
		kb_warn("no pinned xsks_map at %s (%s): %s is used for TX only", path,
			strerror(errno), ifname);
	return fd;
}

static void free_push(struct worker *w, uint64_t addr)
{
	/* aligned mode: any offset inside a chunk identifies the chunk */
	w->free_stack[w->nfree++] = addr & ~((uint64_t)cfg.frame_size - 1);
}

static int create_socket(struct worker *w, struct port *p, bool first, __u16 bind_flags)
{
	struct xsk_socket_config sc = {
		.rx_size = cfg.rx_ring,
		.tx_size = cfg.tx_ring,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = 0,
		.bind_flags = bind_flags,
	};

	return kb_xsk_create(&p->xsk, p->ifname, (unsigned int)w->queue, &w->umem, &p->rx, &p->tx,
			     first ? NULL : &p->fill, first ? NULL : &p->comp, &sc, &stop_flag);
}

static void enable_busy_poll(struct port *p)
{
	int one = 1, usec = (int)cfg.busy_poll_usec, budget = (int)cfg.busy_poll_budget;

	if (setsockopt(p->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
	    setsockopt(p->fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
	    setsockopt(p->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
		kb_die("cannot enable busy polling on %s: %s", p->ifname, strerror(errno));
}

/* Without --multi-buffer a frame longer than one UMEM frame never reaches us: the kernel
 * drops it (rx_dropped) without a word.  Refuse to start instead. */
static void check_frame_fits(const char *ifname)
{
	unsigned int max = kb_single_frame_mtu(cfg.frame_size);
	int mtu = kb_if_mtu(ifname);

	if (mtu < 0)
		kb_warn("cannot read the MTU of %s: %s", ifname, strerror(-mtu));
	else if (!cfg.multi_buffer && (unsigned int)mtu > max)
		kb_die("%s has MTU %d but a --frame-size %u frame holds packets of an MTU up to %u "
		       "(%u bytes of XDP headroom, %u of Ethernet/VLAN headers): pass --multi-buffer "
		       "(XDP_USE_SG, packets over several frames) or lower the MTU", ifname, mtu,
		       cfg.frame_size, max, KB_XDP_HEADROOM, KB_L2_OVERHEAD);
}

static void setup_worker(struct worker *w, int idx)
{
	const char *ifnames[2] = { cfg.iface, cfg.iface2 };
	int err;

	w->queue = cfg.queues[idx];
	w->cpu = cfg.ncpus ? cfg.cpus[idx % cfg.ncpus] : -1;
	w->nports = cfg.mode == M_L2FWD ? 2 : 1;
	w->free_stack = calloc(cfg.frames, sizeof(uint64_t));
	if (!w->free_stack)
		kb_die("out of memory");
	for (unsigned int i = cfg.frames; i > 0; i--)
		free_push(w, (uint64_t)(i - 1) * cfg.frame_size);
	if (cfg.multi_buffer && !(w->tx_eop = calloc(cfg.frames, 1)))
		kb_die("out of memory");

	err = kb_umem_create(&w->umem, cfg.frames, cfg.frame_size, cfg.fill_ring, cfg.comp_ring,
			     &w->ports[0].fill, &w->ports[0].comp);
	if (err)
		kb_die("cannot register UMEM (%u frames of %u bytes): %s. RLIMIT_MEMLOCK or "
		       "CAP_IPC_LOCK may be missing", cfg.frames, cfg.frame_size, strerror(-err));

	for (int pi = 0; pi < w->nports; pi++) {
		struct port *p = &w->ports[pi];
		__u16 base = (cfg.need_wakeup ? XDP_USE_NEED_WAKEUP : 0) |
			     (cfg.multi_buffer ? XDP_USE_SG : 0);

		p->ifname = ifnames[pi];
		p->ifindex = (int)if_nametoindex(p->ifname);
		if (!p->ifindex)
			kb_die("interface %s not found%s%s", p->ifname,
			       cfg.netns ? " in namespace " : "", cfg.netns ? cfg.netns : "");
		check_frame_fits(p->ifname);
		if (cfg.bind == B_ZEROCOPY || cfg.bind == B_AUTO) {
			err = create_socket(w, p, pi == 0, base | XDP_ZEROCOPY);
			if (!err)
				w->zerocopy = true;
			else if (cfg.bind == B_ZEROCOPY)
				kb_die("zero-copy bind on %s queue %d failed: %s (veth and many "
				       "drivers support copy mode only: use --bind copy or auto)",
				       p->ifname, w->queue, strerror(-err));
		}
		if (!p->xsk) {
			if (pi > 0 && w->zerocopy)
				kb_die("%s supports zero-copy but %s does not: a shared UMEM needs "
				       "the same mode; use --bind copy", ifnames[0], p->ifname);
			err = create_socket(w, p, pi == 0, base | XDP_COPY);
			if (cfg.multi_buffer && (err == -EINVAL || err == -EOPNOTSUPP)) {
				char advice[128];

				snprintf(advice, sizeof(advice), "--frame-size 4096 and an MTU <= %u "
					 "without --multi-buffer", kb_single_frame_mtu(4096));
				kb_die_no_sg("kbypass-fwd", p->ifname, (unsigned int)w->queue, err,
					     advice);
			}
			if (err == -EBUSY)
				kb_die("queue %d of %s is still busy (another AF_XDP socket is bound) "
				       "after 5 s of retries", w->queue, p->ifname);
			if (err)
				kb_die("cannot create AF_XDP socket on %s queue %d: %s", p->ifname,
				       w->queue, strerror(-err));
		}
		p->fd = xsk_socket__fd(p->xsk);
		if (cfg.busy_poll)
			enable_busy_poll(p);
	}
}

/* Frames parked in a fill ring wait for RX there.  Only ports registered in an xsks_map
 * receive: a TX-only l2fwd port gets none (they would sit there for good), the receiving
 * ports share the UMEM.  What stays on the free stack serves the RX/TX/completion rings. */
static void set_fill_targets(struct worker *w)
{
	unsigned int receivers = 0;

	for (int pi = 0; pi < w->nports; pi++)
		receivers += w->ports[pi].registered;
	for (int pi = 0; pi < w->nports; pi++) {
		struct port *p = &w->ports[pi];

		p->fill_target = 0;
		if (!p->registered)
			continue;
		p->fill_target = cfg.frames / receivers;
		if (p->fill_target > cfg.fill_ring)
			p->fill_target = cfg.fill_ring;
	}
}

static void register_worker(struct worker *w, int map_fd, int map_fd2)
{
	for (int pi = 0; pi < w->nports; pi++) {
		struct port *p = &w->ports[pi];
		int fd = pi == 0 ? map_fd : map_fd2;
		int err;

		p->map_fd = fd;
		if (fd < 0)
			continue;
		err = xsk_socket__update_xskmap(p->xsk, fd);
		if (err)
			kb_die("cannot register the socket of %s queue %d in xsks_map: %s "
			       "(queue index beyond the map's 64 entries?)", p->ifname, w->queue,
			       strerror(-err));
		p->registered = true;
	}
}

static void unregister_worker(struct worker *w)
{
	for (int pi = 0; pi < w->nports; pi++) {
		struct port *p = &w->ports[pi];
		__u32 key = (__u32)w->queue;

		if (!p->registered)
			continue;
		/* Only our own keys.  ENOENT is fine: the socket close also clears it. */
		if (bpf_map_delete_elem(p->map_fd, &key) && errno != ENOENT)
			kb_warn("cannot remove queue %u of %s from xsks_map: %s", key, p->ifname,
				strerror(errno));
		p->registered = false;
	}
}

/* ---------------------------------------------------------------------------------
 * TAP device for --mode kernel
 * ------------------------------------------------------------------------------- */
static void write_sysctl(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		kb_warn("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void setup_tap(void)
{
	struct ifreq ifr;
	int s;
	char path[PATH_MAX], buf[16] = "";

	if (cfg.tap)
		snprintf(tap_name, sizeof(tap_name), "%s", cfg.tap);
	else
		snprintf(tap_name, sizeof(tap_name), "kbtap-%.9s", cfg.iface);
	/* One TAP queue (fd) per worker: workers never contend for one fd's lock. */
	for (ntap = 0; ntap < cfg.nqueues; ntap++) {
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

		if (fd < 0)
			kb_die("cannot open /dev/net/tun: %s (kernel mode needs TUN/TAP)",
			       strerror(errno));
		tap_fds[ntap] = fd;
		memset(&ifr, 0, sizeof(ifr));
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tap_name);
		if (ioctl(fd, TUNSETIFF, &ifr))
			kb_die("cannot create TAP device %s: %s", tap_name, strerror(errno));
		if (fcntl(fd, F_SETFL, O_NONBLOCK))
			kb_die("fcntl(O_NONBLOCK) on TAP: %s", strerror(errno));
	}

	/* Packets enter with the source address of a host reached via the AF_XDP
	 * interface: strict reverse-path filtering on the TAP would drop them. */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/rp_filter", tap_name);
	write_sysctl(path, "0");
	{
		int fd = open("/proc/sys/net/ipv4/conf/all/rp_filter", O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			if (read(fd, buf, sizeof(buf) - 1) > 0 && buf[0] == '1')
				kb_warn("net.ipv4.conf.all.rp_filter=1 (strict) overrides the TAP's "
					"setting: IPv4 packets reinjected through %s will be dropped; "
					"set it to 0 or 2", tap_name);
			close(fd);
		}
	}

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		kb_die("socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", tap_name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		kb_die("SIOCGIFFLAGS %s: %s", tap_name, strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		kb_die("cannot bring %s up: %s", tap_name, strerror(errno));
	if (ioctl(s, SIOCGIFHWADDR, &ifr))
		kb_die("SIOCGIFHWADDR %s: %s", tap_name, strerror(errno));
	memcpy(tap_mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(s);
}

static void drain_tap(void)
{
	char buf[2048];

	/* Whatever the stack routes out of the TAP (IPv6 ND/MLD) is read and dropped. */
	for (int q = 0; q < ntap; q++)
		for (int i = 0; i < 256; i++)
			if (read(tap_fds[q], buf, sizeof(buf)) <= 0)
				break;
}

/* ---------------------------------------------------------------------------------
 * Packet processing.  Each returns true when the frame should be transmitted.
 * ------------------------------------------------------------------------------- */
static inline void swap_bytes(void *a, void *b, size_t n)
{
	unsigned char t[16], *x = a, *y = b;

	memcpy(t, x, n);
	memcpy(x, y, n);
	memcpy(y, t, n);
}

/* Where the UDP header is.  Up to two VLAN tags (802.1ad outer + 802.1Q inner, or two
 * 802.1Q) are skipped, as in the steering program; they stay in the frame as they are. */
#define MAX_VLANS 2
#define VLAN_TAG_LEN 4

struct udp_view {
	unsigned char *l3; /* IPv4 or IPv6 header */
	struct udphdr *udp;
	bool v6;
};

/* true when an Ethernet header, at most MAX_VLANS tags, an unfragmented IPv4 header (or
 * an IPv6 header with UDP as next header) and a UDP header all fit in hlen bytes (the
 * first descriptor of a multi-buffer packet), and the lengths agree: IP version as the
 * ethertype says, the IPv4 total length (IPv6 payload length) within the len bytes of the
 * packet, the UDP length at least 8 and within the IP packet.  The steering program
 * checks the same, so a malformed frame seen here counts as invalid. */
static bool find_udp_in(unsigned char *pkt, uint32_t hlen, uint32_t len, struct udp_view *v)
{
	uint32_t off = ETH_HLEN, l3_end;
	uint16_t proto, ulen;

	if (hlen < ETH_HLEN)
		return false;
	proto = ntohs(((struct ethhdr *)pkt)->h_proto);
	for (int i = 0; i < MAX_VLANS && (proto == ETH_P_8021Q || proto == ETH_P_8021AD); i++) {
		if (hlen < off + VLAN_TAG_LEN)
			return false;
		proto = (uint16_t)(pkt[off + 2] << 8 | pkt[off + 3]); /* encapsulated type */
		off += VLAN_TAG_LEN;
	}
	v->l3 = pkt + off;
	if (proto == ETH_P_IP) {
		struct iphdr *ip = (struct iphdr *)v->l3;

		if (hlen < off + sizeof(*ip) || ip->version != 4 || ip->ihl < 5 ||
		    ip->protocol != IPPROTO_UDP || (ip->frag_off & htons(0x3fff)))
			return false;
		l3_end = off + ntohs(ip->tot_len);
		if (ntohs(ip->tot_len) < ip->ihl * 4u || l3_end > len)
			return false;
		off += ip->ihl * 4u;
		v->v6 = false;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)v->l3;

		if (hlen < off + sizeof(*ip6) || ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return false;
		off += sizeof(*ip6);
		l3_end = off + ntohs(ip6->payload_len);
		if (l3_end > len)
			return false;
		v->v6 = true;
	} else {
		return false;
	}
	if (l3_end < off + sizeof(struct udphdr) || hlen < off + sizeof(struct udphdr))
		return false;
	v->udp = (struct udphdr *)(pkt + off);
	ulen = ntohs(v->udp->len);
	if (ulen < sizeof(struct udphdr) || off + ulen > l3_end)
		return false;
	return true;
}

static bool find_udp(unsigned char *pkt, uint32_t len, struct udp_view *v)
{
	return find_udp_in(pkt, len, len, v);
}

/* Sum of len bytes from p (inside iov[0]) on through iov[1..]: a piece that starts at an
 * odd offset of the datagram adds its sum byte-swapped (RFC 1071). */
static uint32_t csum_iov(uint32_t sum, const unsigned char *p, const struct iovec *iov,
			 int niov, uint32_t len)
{
	uint32_t off = 0;

	for (int i = 0; i < niov && off < len; i++) {
		const unsigned char *b = i ? iov[i].iov_base : p;
		uint32_t n = (uint32_t)((const unsigned char *)iov[i].iov_base + iov[i].iov_len - b);

		if (n > len - off)
			n = len - off;
		if (off & 1) {
			uint32_t part = kb_csum_add(0, b, n);

			sum += ((part & 0xff) << 8) | (part >> 8); /* part <= 0xffff */
		} else {
			sum = kb_csum_add(sum, b, n);
		}
		off += n;
	}
	return sum;
}

/* A sender on a veth peer hands over UDP with CHECKSUM_PARTIAL: the checksum field holds
 * only the folded pseudo-header sum (not complemented), and any stack receiving the
 * frame back drops it (UdpInCsumErrors).  Real NICs deliver complete checksums.  Only
 * that partial form is completed: recognising it costs the pseudo-header sum, not a pass
 * over the payload.  (A complete checksum that happens to equal the partial form is
 * recomputed to the same value.)  Returns 1 when completed, 0 otherwise.
 * The packet is iov[0..niov) (several with --multi-buffer), len bytes in all; the UDP
 * header is in iov[0]. */
static int fix_udp_csum_iov(const struct iovec *iov, int niov, uint32_t len,
			    const struct udp_view *v)
{
	struct udphdr *udp = v->udp;
	uint32_t ulen = ntohs(udp->len), sum;
	uint16_t partial;

	if (ulen < sizeof(*udp) ||
	    (size_t)((unsigned char *)udp - (unsigned char *)iov[0].iov_base) + ulen > len)
		return 0; /* truncated */
	if (v->v6) {
		sum = kb_csum_add(0, &((struct ipv6hdr *)v->l3)->saddr, 32);
	} else {
		if (!udp->check)
			return 0; /* IPv4 "no checksum" */
		sum = kb_csum_add(0, &((struct iphdr *)v->l3)->saddr, 8);
	}
	sum += IPPROTO_UDP + ulen;
	partial = (uint16_t)~kb_csum_fold(sum);
	if (ntohs(udp->check) != partial)
		return 0; /* complete (or wrong at the sender: not ours to launder) */
	udp->check = 0;
	udp->check = htons(kb_csum_fold(csum_iov(sum, (unsigned char *)udp, iov, niov, ulen)));
	if (!udp->check)
		udp->check = 0xffff;
	return 1;
}

static int fix_udp_csum(unsigned char *pkt, uint32_t len, const struct udp_view *v)
{
	struct iovec iov = { pkt, len };

	return fix_udp_csum_iov(&iov, 1, len, v);
}

/* Reflect a UDP datagram to its sender: MACs, IP addresses and UDP ports swap places;
 * VLAN tags stay.  Swapping 16-bit-aligned fields leaves the IPv4 header and UDP
 * checksums valid (and a partial UDP checksum partial). */
static void reflect_udp(unsigned char *pkt, const struct udp_view *v)
{
	struct ethhdr *eth = (struct ethhdr *)pkt;

	if (v->v6) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)v->l3;

		swap_bytes(&ip6->saddr, &ip6->daddr, 16);
	} else {
		struct iphdr *ip = (struct iphdr *)v->l3;

		swap_bytes(&ip->saddr, &ip->daddr, 4);
	}
	swap_bytes(&v->udp->source, &v->udp->dest, 2);
	swap_bytes(eth->h_source, eth->h_dest, ETH_ALEN);
}

static bool echo_frame(unsigned char *pkt, uint32_t len, struct udp_view *v)
{
	if (!find_udp(pkt, len, v))
		return false;
	reflect_udp(pkt, v);
	return true;
}

/* ---------------------------------------------------------------------------------
 * The loop: refill -> rx -> process -> tx -> kick -> completion
 * ------------------------------------------------------------------------------- */
static void refill(struct worker *w, struct port *p)
{
	unsigned int in_ring = p->fill.size - xsk_prod_nb_free(&p->fill, p->fill.size);
	unsigned int want, n;
	__u32 idx;

	if (in_ring < p->fill_target && w->nfree) {
		want = p->fill_target - in_ring;
		if (want > w->nfree)
			want = w->nfree;
		n = xsk_ring_prod__reserve(&p->fill, want, &idx);
		for (unsigned int i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&p->fill, idx + i) = w->free_stack[--w->nfree];
		if (n)
			xsk_ring_prod__submit(&p->fill, n);
	}
	/* A driver that stopped for an empty fill ring waits to be woken (need_wakeup);
	 * checked on every pass, not only when idle, so RX resumes at once under load. */
	if (p->fill_target && cfg.need_wakeup && xsk_ring_prod__needs_wakeup(&p->fill)) {
		w->c.fill_wakeup++;
		recvfrom(p->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	}
}

/* --multi-buffer: completions come per descriptor; a packet is complete with its last
 * one (marked in tx_eop when it was queued).  Returns the packets completed. */
static unsigned int sg_tx_done(struct worker *w, struct xsk_ring_cons *comp, __u32 idx,
			       unsigned int n)
{
	unsigned int pkts = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t f = *xsk_ring_cons__comp_addr(comp, idx + i) / cfg.frame_size;

		pkts += w->tx_eop[f];
		w->tx_eop[f] = 0;
	}
	w->c.tx_descs += n;
	return pkts;
}

static void complete_tx(struct worker *w, struct port *p)
{
	__u32 idx;
	unsigned int n;

	if (!p->tx_outstanding)
		return;
	n = xsk_ring_cons__peek(&p->comp, cfg.comp_ring, &idx);
	if (cfg.multi_buffer)
		w->c.tx_packets += sg_tx_done(w, &p->comp, idx, n);
	else
		w->c.tx_packets += n;
	for (unsigned int i = 0; i < n; i++)
		free_push(w, *xsk_ring_cons__comp_addr(&p->comp, idx + i));
	if (n) {
		xsk_ring_cons__release(&p->comp, n);
		p->tx_outstanding -= n;
	}
}

/* Only frames still in the TX ring need a kick: frames the kernel already took and that
 * wait for completion (the peer has not freed them yet) do not. */
static void kick_tx(struct worker *w, struct port *p)
{
	int err;

	if (!kb_tx_pending(&p->tx))
		return;
	if (w->zerocopy && cfg.need_wakeup && !xsk_ring_prod__needs_wakeup(&p->tx))
		return;
	err = kb_xsk_kick_tx(p->fd, &p->tx, !w->zerocopy, 64, &w->c.tx_kick);
	if (err)
		kb_warn("sendto on %s: %s", p->ifname, strerror(-err));
}

static unsigned int rx_burst(struct worker *w, struct port *in, struct port *out)
{
	struct xdp_desc txd[1024];
	__u32 ridx, tidx;
	unsigned int n, ntx = 0, room;

	n = cfg.batch;
	if (out) {
		/* Back-pressure: take no more than the TX ring can hold, so under overload
		 * the kernel drops at the RX ring (counted as rx_ring_full) before it copies,
		 * instead of us dropping frames we already paid for. */
		room = xsk_prod_nb_free(&out->tx, cfg.batch);
		if (room < n)
			n = room;
		if (!n)
			return 0;
	}
	n = xsk_ring_cons__peek(&in->rx, n, &ridx);
	if (!n)
		return 0;
	/* The kernel wrote these frames on the CPU that ran the XDP program: ask for every
	 * header of the batch first, so the cache misses overlap instead of queueing up. */
	if (cfg.mode != M_RXDROP)
		for (unsigned int i = 0; i < n; i++)
			__builtin_prefetch(xsk_umem__get_data(w->umem.area, xsk_umem__add_offset_to_addr(
				xsk_ring_cons__rx_desc(&in->rx, ridx + i)->addr)), 1);
	for (unsigned int i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&in->rx, ridx + i);
		uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
		unsigned char *pkt = xsk_umem__get_data(w->umem.area, addr);
		struct udp_view v;
		bool tx = false;

		w->c.rx_packets++;
		w->c.rx_bytes += d->len;
		switch (cfg.mode) {
		case M_RXDROP:
			break;
		case M_ECHO:
			tx = echo_frame(pkt, d->len, &v);
			if (!tx)
				w->c.invalid++;
			else if (cfg.csum_fix)
				w->c.csum_fixed += (uint64_t)fix_udp_csum(pkt, d->len, &v);
			break;
		case M_L2FWD:
			tx = true;
			if (cfg.csum_fix && find_udp(pkt, d->len, &v))
				w->c.csum_fixed += (uint64_t)fix_udp_csum(pkt, d->len, &v);
			break;
		case M_KERNEL:
			if (d->len < ETH_HLEN) {
				w->c.invalid++;
				break;
			}
			memcpy(((struct ethhdr *)pkt)->h_dest, tap_mac, ETH_ALEN);
			if (cfg.csum_fix && find_udp(pkt, d->len, &v))
				w->c.csum_fixed += (uint64_t)fix_udp_csum(pkt, d->len, &v);
			if (write(w->tap_fd, pkt, d->len) == (ssize_t)d->len) {
				w->c.tx_packets++;
				w->c.tx_bytes += d->len;
			} else {
				w->c.dropped++;
			}
			break;
		}
		if (tx)
			txd[ntx++] = *d;
		else
			free_push(w, d->addr);
	}
	xsk_ring_cons__release(&in->rx, n);
	if (!ntx)
		return n;

	/* Reserve exactly what fits; the rest is dropped and counted (overload). */
	room = xsk_prod_nb_free(&out->tx, ntx);
	if (room > ntx)
		room = ntx;
	if (room && xsk_ring_prod__reserve(&out->tx, room, &tidx) == room) {
		for (unsigned int i = 0; i < room; i++) {
			struct xdp_desc *t = xsk_ring_prod__tx_desc(&out->tx, tidx + i);

			t->addr = txd[i].addr;
			t->len = txd[i].len;
			t->options = 0;
			w->c.tx_bytes += txd[i].len;
		}
		xsk_ring_prod__submit(&out->tx, room);
		out->tx_outstanding += room;
	} else {
		room = 0;
	}
	for (unsigned int i = room; i < ntx; i++) {
		w->c.dropped++;
		free_push(w, txd[i].addr);
	}
	return n;
}

/* ---------------------------------------------------------------------------------
 * --multi-buffer (XDP_USE_SG): a packet is one or more descriptors, XDP_PKT_CONTD on all
 * but the last, headers in the first.  A packet is only ever handled whole: the kernel
 * publishes all its descriptors at once, only whole packets are taken from the RX ring,
 * reserved in a TX ring (never split by a full ring or a batch) or dropped.
 * ------------------------------------------------------------------------------- */

/* The modes for one packet in iov[0..k), len bytes.  true: transmit it. */
static bool process_sg(struct worker *w, struct iovec *iov, unsigned int k, uint32_t len)
{
	unsigned char *pkt = iov[0].iov_base;
	struct udp_view v;
	bool udp;

	if (cfg.mode == M_RXDROP)
		return false;
	udp = find_udp_in(pkt, (uint32_t)iov[0].iov_len, len, &v);
	if (cfg.mode == M_ECHO && !udp) {
		w->c.invalid++;
		return false;
	}
	if (cfg.mode == M_KERNEL && iov[0].iov_len < ETH_HLEN) {
		w->c.invalid++;
		return false;
	}
	if (cfg.mode == M_ECHO)
		reflect_udp(pkt, &v);
	else if (cfg.mode == M_KERNEL)
		memcpy(((struct ethhdr *)pkt)->h_dest, tap_mac, ETH_ALEN);
	if (udp && cfg.csum_fix)
		w->c.csum_fixed += (uint64_t)fix_udp_csum_iov(iov, (int)k, len, &v);
	if (cfg.mode != M_KERNEL)
		return true;
	/* all parts in one write: the TAP sees one frame */
	if (writev(w->tap_fd, iov, (int)k) == (ssize_t)len) {
		w->c.tx_packets++;
		w->c.tx_descs += k;
		w->c.tx_bytes += len;
	} else {
		w->c.dropped++;
	}
	return false;
}

/* Queue the whole packets of txd[0..ntx) on out's TX ring; what does not fit is dropped
 * (whole packets, counted). */
static void tx_sg(struct worker *w, struct port *out, const struct xdp_desc *txd,
		  unsigned int ntx)
{
	unsigned int room = xsk_prod_nb_free(&out->tx, ntx), fit = 0;
	__u32 tidx;

	for (unsigned int i = 0; i < ntx && i < room; i++)
		if (!(txd[i].options & XDP_PKT_CONTD))
			fit = i + 1;
	if (fit && xsk_ring_prod__reserve(&out->tx, fit, &tidx) == fit) {
		for (unsigned int i = 0; i < fit; i++) {
			*xsk_ring_prod__tx_desc(&out->tx, tidx + i) = txd[i];
			w->c.tx_bytes += txd[i].len;
			if (!(txd[i].options & XDP_PKT_CONTD))
				w->tx_eop[txd[i].addr / cfg.frame_size] = 1;
		}
		xsk_ring_prod__submit(&out->tx, fit);
		out->tx_outstanding += fit;
	} else {
		fit = 0;
	}
	for (unsigned int i = fit; i < ntx; i++) {
		w->c.dropped += !(txd[i].options & XDP_PKT_CONTD);
		free_push(w, txd[i].addr);
	}
}

static unsigned int rx_burst_sg(struct worker *w, struct port *in, struct port *out)
{
	struct xdp_desc txd[1024 + KB_SG_MAX_DESCS];
	struct iovec iov[KB_SG_MAX_DESCS];
	unsigned int n = cfg.batch + KB_SG_MAX_DESCS, peeked, ntx = 0, k, pkts = 0;
	__u32 ridx;

	if (out) { /* back-pressure as in rx_burst, in descriptors */
		unsigned int room = xsk_prod_nb_free(&out->tx, n);

		if (room < n)
			n = room;
	}
	peeked = xsk_ring_cons__peek(&in->rx, n, &ridx);
	n = kb_sg_whole(&in->rx, ridx, peeked);
	if (peeked > n)
		xsk_ring_cons__cancel(&in->rx, peeked - n);
	if (!n)
		return 0;
	for (unsigned int i = 0; i < n; i += k) {
		uint32_t len = 0;
		bool tx;

		k = kb_sg_descs(&in->rx, ridx + i, n - i);
		for (unsigned int j = 0; j < k && j < KB_SG_MAX_DESCS; j++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&in->rx, ridx + i + j);

			iov[j].iov_base = xsk_umem__get_data(w->umem.area,
							     xsk_umem__add_offset_to_addr(d->addr));
			iov[j].iov_len = d->len;
			len += d->len;
		}
		pkts++;
		w->c.rx_packets++;
		w->c.rx_descs += k;
		w->c.rx_bytes += len;
		if (k > KB_SG_MAX_DESCS) /* more parts than the kernel makes: not ours to send */
			w->c.invalid++;
		tx = k <= KB_SG_MAX_DESCS && process_sg(w, iov, k, len);
		for (unsigned int j = 0; j < k; j++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&in->rx, ridx + i + j);

			if (!tx) {
				free_push(w, d->addr);
				continue;
			}
			txd[ntx] = *d;
			txd[ntx++].options = j + 1 < k ? XDP_PKT_CONTD : 0;
		}
	}
	xsk_ring_cons__release(&in->rx, n);
	if (ntx)
		tx_sg(w, out, txd, ntx);
	return pkts;
}

/* One pass over the ports: completions, refill, RX -> process -> TX, kick.  Returns the
 * number of frames received. */
static unsigned int service(struct worker *w)
{
	unsigned int got = 0;

	for (int pi = 0; pi < w->nports; pi++) {
		struct port *p = &w->ports[pi];
		struct port *out = NULL;

		if (cfg.mode == M_ECHO)
			out = p;
		else if (cfg.mode == M_L2FWD)
			out = &w->ports[pi ^ 1];
		complete_tx(w, p);
		refill(w, p);
		got += cfg.multi_buffer ? rx_burst_sg(w, p, out) : rx_burst(w, p, out);
	}
	for (int pi = 0; pi < w->nports; pi++) {
		kick_tx(w, &w->ports[pi]);
		complete_tx(w, &w->ports[pi]);
	}
	return got;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Anything for this worker in an RX ring (no syscall: a look at the producer index). */
static bool rx_ready(struct worker *w)
{
	for (int pi = 0; pi < w->nports; pi++)
		if (xsk_cons_nb_avail(&w->ports[pi].rx, 1))
			return true;
	return false;
}

/* --spin-usec: a dedicated core keeps looking at the rings for a while before it goes to
 * sleep, so a packet that follows shortly is picked up without a wake-up (the scheduler's
 * wake-up latency is what makes the tail of the RTT). */
static bool spin_for_rx(struct worker *w)
{
	uint64_t until;

	if (!cfg.spin_usec)
		return false;
	until = kb_now_ns() + (uint64_t)cfg.spin_usec * 1000u;
	do {
		for (int i = 0; i < 64; i++) {
			if (rx_ready(w))
				return true;
			cpu_relax();
		}
		for (int pi = 0; pi < w->nports; pi++)
			complete_tx(w, &w->ports[pi]);
	} while (kb_now_ns() < until && !stop_flag);
	return false;
}

static void wait_for_rx(struct worker *w, struct pollfd *pfd)
{
	bool pending = false;

	if (cfg.busy_poll) {
		/* recvfrom drives the NAPI busy poll (SO_PREFER_BUSY_POLL) */
		for (int pi = 0; pi < w->nports; pi++) {
			w->c.rx_poll++;
			recvfrom(w->ports[pi].fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		return;
	}
	if (spin_for_rx(w))
		return;
	if (cfg.coalesce_usec && w->busy) {
		/* Traffic is flowing: let the next batch gather for a fixed time instead of
		 * waking up for every few packets (the wake-up is what costs CPU here).  The
		 * first packet after an idle period still wakes the worker at once. */
		struct timespec ts = { 0, (long)cfg.coalesce_usec * 1000 };

		w->busy = false;
		w->c.rx_poll++; /* a wait for RX too: syscalls per packet stay honest */
		nanosleep(&ts, NULL);
		return;
	}
	/* Sleep in poll() until the RX ring has data (100 ms cap so a stop request is seen).
	 * With frames still in a TX ring (the peer pushed back) or not yet completed, only
	 * yield: in copy mode poll() itself transmits, and completed frames must go back to
	 * the fill ring before it runs dry. */
	for (int pi = 0; pi < w->nports; pi++)
		pending |= kb_tx_pending(&w->ports[pi].tx) > 0 || w->ports[pi].tx_outstanding > 0;
	w->c.rx_poll++;
	poll(pfd, (nfds_t)w->nports, pending ? 1 : 100);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd[2];

	if (w->cpu >= 0) {
		int err = kb_pin_cpu(w->cpu);

		if (err)
			kb_warn("cannot pin queue %d to CPU %d: %s", w->queue, w->cpu, strerror(err));
	}
	for (int pi = 0; pi < w->nports; pi++) {
		pfd[pi].fd = w->ports[pi].fd;
		pfd[pi].events = POLLIN;
	}
	if (cfg.coalesce_usec)
		prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us, not the default 50 us */
	while (!stop_flag) {
		if (service(w))
			w->busy = true;
		else
			wait_for_rx(w, pfd);
	}
	/* Flush: give in-flight TX frames a moment to complete so counters are final. */
	for (int i = 0; i < 100; i++) {
		unsigned int left = 0;

		for (int pi = 0; pi < w->nports; pi++) {
			kick_tx(w, &w->ports[pi]);
			complete_tx(w, &w->ports[pi]);
			left += w->ports[pi].tx_outstanding;
		}
		if (!left)
			break;
		usleep(1000);
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------
 * Stats
 * ------------------------------------------------------------------------------- */
struct totals {
	struct counters c;
	struct xdp_statistics xs;
	double cpu_user, cpu_sys;
};

static uint64_t syscalls(const struct counters *c)
{
	return c->rx_poll + c->fill_wakeup + c->tx_kick;
}

static void collect(struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		struct counters c;

		memcpy(&c, (const void *)&w->c, sizeof(c));
		t->c.rx_packets += c.rx_packets;
		t->c.rx_bytes += c.rx_bytes;
		t->c.tx_packets += c.tx_packets;
		t->c.tx_bytes += c.tx_bytes;
		t->c.dropped += c.dropped;
		t->c.invalid += c.invalid;
		t->c.rx_poll += c.rx_poll;
		t->c.fill_wakeup += c.fill_wakeup;
		t->c.tx_kick += c.tx_kick;
		t->c.csum_fixed += c.csum_fixed;
		t->c.rx_descs += cfg.multi_buffer ? c.rx_descs : c.rx_packets;
		t->c.tx_descs += cfg.multi_buffer ? c.tx_descs : c.tx_packets;
		for (int pi = 0; pi < w->nports; pi++)
			if (w->ports[pi].xsk)
				kb_xsk_stats_add(w->ports[pi].fd, &t->xs);
	}
	kb_cpu_times(&t->cpu_user, &t->cpu_sys);
}

static void render_json(struct kb_buf *b, const struct totals *t, double rx_pps, double tx_pps,
			bool running, double elapsed)
{
	bool zc = nworkers && workers[0].zerocopy;
	uint64_t lost = kb_xsk_rx_lost(&t->xs), nsys = syscalls(&t->c);

	kb_buf_printf(b, "{\"pid\": %d, \"running\": %s, \"mode\": \"%s\", \"bind_mode\": \"%s\", "
		      "\"need_wakeup\": %s, \"busy_poll\": %s, \"spin_usec\": %u, "
		      "\"coalesce_usec\": %u",
		      (int)getpid(), running ? "true" : "false", mode_names[cfg.mode],
		      zc ? "zerocopy" : "copy", cfg.need_wakeup ? "true" : "false",
		      cfg.busy_poll ? "true" : "false", cfg.spin_usec, cfg.coalesce_usec);
	kb_buf_printf(b, ", \"iface\": ");
	kb_buf_json_str(b, cfg.iface);
	kb_buf_printf(b, ", \"iface2\": ");
	kb_buf_json_str(b, cfg.iface2);
	kb_buf_printf(b, ", \"netns\": ");
	kb_buf_json_str(b, cfg.netns);
	kb_buf_printf(b, ", \"tap\": ");
	kb_buf_json_str(b, ntap ? tap_name : NULL);
	kb_buf_printf(b, ", \"queues\": [");
	for (int i = 0; i < cfg.nqueues; i++)
		kb_buf_printf(b, "%s%d", i ? ", " : "", cfg.queues[i]);
	kb_buf_printf(b, "], \"cpus\": [");
	for (int i = 0; i < cfg.ncpus; i++)
		kb_buf_printf(b, "%s%d", i ? ", " : "", cfg.cpus[i]);
	/* dropped: by us; kernel_dropped: by the kernel on the way into our sockets (no
	 * fill-ring frame, RX ring full); steered = rx_packets + kernel_dropped is what the
	 * XDP program redirected to us, and steered = tx_packets + dropped_total + invalid
	 * (+ frames in flight) in echo/l2fwd/kernel mode. */
	kb_buf_printf(b, "], \"rx_packets\": %llu, \"rx_bytes\": %llu, \"tx_packets\": %llu, "
		      "\"tx_bytes\": %llu, \"rx_pps\": %.1f, \"tx_pps\": %.1f, \"dropped\": %llu, "
		      "\"kernel_dropped\": %llu, \"dropped_total\": %llu, \"steered\": %llu, "
		      "\"invalid\": %llu, \"csum_fixed\": %llu, \"multi_buffer\": %s, "
		      "\"rx_descs\": %llu, \"tx_descs\": %llu, ",
		      (unsigned long long)t->c.rx_packets, (unsigned long long)t->c.rx_bytes,
		      (unsigned long long)t->c.tx_packets, (unsigned long long)t->c.tx_bytes,
		      rx_pps, tx_pps, (unsigned long long)t->c.dropped, (unsigned long long)lost,
		      (unsigned long long)(t->c.dropped + lost),
		      (unsigned long long)(t->c.rx_packets + lost),
		      (unsigned long long)t->c.invalid, (unsigned long long)t->c.csum_fixed,
		      cfg.multi_buffer ? "true" : "false", (unsigned long long)t->c.rx_descs,
		      (unsigned long long)t->c.tx_descs);
	kb_buf_printf(b, "\"wakeups\": %llu, \"syscalls\": {\"rx_poll\": %llu, "
		      "\"fill_wakeup\": %llu, \"tx_kick\": %llu}, \"syscalls_per_packet\": %.4f, ",
		      (unsigned long long)nsys, (unsigned long long)t->c.rx_poll,
		      (unsigned long long)t->c.fill_wakeup, (unsigned long long)t->c.tx_kick,
		      t->c.rx_packets ? (double)nsys / (double)t->c.rx_packets : 0.0);
	kb_buf_printf(b, "\"xdp_stats\": {\"rx_dropped\": %llu, \"rx_invalid_descs\": %llu, "
		      "\"rx_ring_full\": %llu, \"rx_fill_ring_empty_descs\": %llu, "
		      "\"tx_invalid_descs\": %llu, \"tx_ring_empty_descs\": %llu}, ",
		      (unsigned long long)t->xs.rx_dropped,
		      (unsigned long long)t->xs.rx_invalid_descs,
		      (unsigned long long)t->xs.rx_ring_full,
		      (unsigned long long)t->xs.rx_fill_ring_empty_descs,
		      (unsigned long long)t->xs.tx_invalid_descs,
		      (unsigned long long)t->xs.tx_ring_empty_descs);
	kb_buf_printf(b, "\"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"elapsed_s\": %.3f, "
		      "\"timestamp\": %.3f}",
		      t->cpu_user, t->cpu_sys, elapsed, kb_wall_s());
}

/* --multi-buffer: " descs RX: n TX: n" for the text line, else nothing. */
static const char *descs_text(const struct totals *t)
{
	static char buf[64];

	if (!cfg.multi_buffer)
		return "";
	snprintf(buf, sizeof(buf), " descs RX: %llu TX: %llu", (unsigned long long)t->c.rx_descs,
		 (unsigned long long)t->c.tx_descs);
	return buf;
}

static void report(const struct totals *t, const struct totals *prev, double dt, bool running,
		   double elapsed)
{
	double rx_pps = dt > 0 ? (double)(t->c.rx_packets - prev->c.rx_packets) / dt : 0;
	double tx_pps = dt > 0 ? (double)(t->c.tx_packets - prev->c.tx_packets) / dt : 0;
	struct kb_buf b = { 0 };

	if (!running) { /* final line: averages over the whole run */
		rx_pps = elapsed > 0 ? (double)t->c.rx_packets / elapsed : 0;
		tx_pps = elapsed > 0 ? (double)t->c.tx_packets / elapsed : 0;
	}
	render_json(&b, t, rx_pps, tx_pps, running, elapsed);
	if (cfg.json) {
		fprintf(stdout, "%s\n", b.s);
	} else if (!cfg.quiet || !running) {
		fprintf(stdout, "AF_XDP RX: %llu pkts (%.0f pps) TX: %llu pkts (%.0f pps) "
			"dropped: %llu (kernel %llu) invalid: %llu syscalls: %llu%s%s\n",
			(unsigned long long)t->c.rx_packets, rx_pps,
			(unsigned long long)t->c.tx_packets, tx_pps,
			(unsigned long long)(t->c.dropped + kb_xsk_rx_lost(&t->xs)),
			(unsigned long long)kb_xsk_rx_lost(&t->xs), (unsigned long long)t->c.invalid,
			(unsigned long long)syscalls(&t->c), descs_text(t), running ? "" : " (final)");
	}
	fflush(stdout);
	if (cfg.stats_file) {
		kb_buf_printf(&b, "\n");
		int err = kb_write_atomic(cfg.stats_file, b.s, b.len);

		if (err)
			kb_warn("cannot write stats file %s: %s", cfg.stats_file, strerror(-err));
	}
	kb_buf_free(&b);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int map_fd, map_fd2 = -1, err;
	struct totals prev, cur;
	double start, last, deadline;
	sigset_t block, old;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse_args(argc, argv);

	/* Pins first (bpffs lives in our mount namespace), then the network namespace. */
	map_fd = open_xsks_map(cfg.pin_dir, cfg.iface, true);
	if (cfg.mode == M_L2FWD)
		map_fd2 = open_xsks_map(cfg.pin_dir2, cfg.iface2, false);
	if (cfg.netns) {
		err = kb_enter_netns(cfg.netns);
		if (err)
			kb_die("cannot enter network namespace %s: %s", cfg.netns, strerror(-err));
	}
	kb_raise_memlock();

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (cfg.mode == M_KERNEL)
		setup_tap();
	for (int i = 0; i < cfg.nqueues; i++) {
		setup_worker(&workers[i], i);
		nworkers++;
	}
	for (int i = 0; i < nworkers; i++) {
		register_worker(&workers[i], map_fd, map_fd2);
		set_fill_targets(&workers[i]);
		workers[i].tap_fd = ntap ? tap_fds[i] : -1;
	}

	/* workers must not take the signals: the main thread owns shutdown */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int i = 0; i < nworkers; i++) {
		err = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
		if (err)
			kb_die("pthread_create: %s", strerror(err));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	fprintf(stderr, "kbypass-fwd: mode %s on %s%s%s queues", mode_names[cfg.mode], cfg.iface,
		cfg.iface2 ? " -> " : "", cfg.iface2 ? cfg.iface2 : "");
	for (int i = 0; i < cfg.nqueues; i++)
		fprintf(stderr, "%s%d", i ? "," : " ", cfg.queues[i]);
	fprintf(stderr, ", bind %s%s%s\n", workers[0].zerocopy ? "zerocopy" : "copy",
		ntap ? ", tap " : "", ntap ? tap_name : "");

	start = last = kb_now_s();
	deadline = cfg.duration > 0 ? start + cfg.duration : 0;
	collect(&prev);
	report(&prev, &prev, 0, true, 0);
	while (!stop_flag) {
		double now = kb_now_s(), next = last + cfg.interval;

		if (deadline && now >= deadline)
			break;
		if (deadline && deadline < next)
			next = deadline;
		if (now < next) {
			double s = next - now;

			if (s > 0.05)
				s = 0.05;
			usleep((useconds_t)(s * 1e6));
			drain_tap();
			continue;
		}
		collect(&cur);
		report(&cur, &prev, now - last, true, now - start);
		prev = cur;
		last = now;
	}
	stop_flag = 1;
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
	/* Leave the steering program's map as we found it: our keys only. */
	for (int i = 0; i < nworkers; i++)
		unregister_worker(&workers[i]);
	collect(&cur);
	report(&cur, &prev, kb_now_s() - last, false, kb_now_s() - start);
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		for (int pi = w->nports - 1; pi >= 0; pi--)
			if (w->ports[pi].xsk)
				xsk_socket__delete(w->ports[pi].xsk);
		kb_umem_destroy(&w->umem);
		free(w->free_stack);
		free(w->tx_eop);
	}
	for (int q = 0; q < ntap; q++)
		close(tap_fds[q]);
	if (map_fd >= 0)
		close(map_fd);
	if (map_fd2 >= 0)
		close(map_fd2);
	return 0;
}
