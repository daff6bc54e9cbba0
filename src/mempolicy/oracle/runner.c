/*
 * runner.c: execute one mempolicy trace (trace format 1.3) on the running
 * kernel and print the canonical output lines "LINE COMMAND: RESULT".
 *
 * Build: gcc -static -O2 $(python3 -c 'from mempolicy.trace.limits import
 *        c_defines; print(*c_defines())') -o runner runner.c
 * Usage: runner [--no-align] [--commands N] TRACEFILE
 *        runner --parse-only TRACEFILE   (print "LINE WORD..." per command)
 *
 * The lexical rules and the limits are those of scan_text() in
 * mempolicy/trace/parser.py, step for step and with the same messages
 * ("runner: line N: message"); the limits come from mempolicy/trace/limits.py
 * as -D flags.  The rest of the trace is assumed valid (the Python side
 * validates it first); anything the runner cannot understand is reported on
 * stderr with exit status 2.  --commands N makes the runner refuse to run a
 * trace in which it reads another number of commands than the parser did.
 *
 * Once the trace starts, the runner allocates no user memory of its own:
 * all buffers are static, prefaulted at start, and output goes straight to
 * write(2), so the only pages the process faults in are the trace's own.
 *
 * The runner's own memory layout is visible in one place: fork copies its
 * page tables under the task policy, which advances an interleave task
 * policy's round robin (11 allocations on Linux 7.3.4; the model's
 * RUNNER_FORK_PGTABLES in syscalls/process.py).  Changing the sizes or the
 * number of the static buffers below can change that count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <sys/mount.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_MBIND 237
#define NR_SET_MEMPOLICY 238
#define NR_GET_MEMPOLICY 239
#define NR_MIGRATE_PAGES 256
#define NR_MOVE_PAGES 279
#define NR_SET_MEMPOLICY_HOME_NODE 450

#define PAGE 4096UL
#define MASK_BITS 1024
#define MASK_WORDS (MASK_BITS / 64)
#define HL_MAXNODE 1025UL          /* maxnode of high-level commands */
#define DEFAULT_BASE 0x200000000000UL
#define DEFAULT_STRIDE 0x40000000UL

#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)
#define MPOL_F_NUMA_BALANCING (1 << 13)
#define MPOL_F_NODE 1
#define MPOL_F_ADDR 2
#define MPOL_F_MEMS_ALLOWED 4
#define MPOL_MF_STRICT 1
#define MPOL_MF_MOVE 2
#define MPOL_MF_MOVE_ALL 4

#define INO_ALIGN 2520            /* lcm(1..10), see the spec */
#define INO_BATCH 1024            /* shmem's per-CPU inode batch */
#define INO_ROOM 64               /* objects a trace may create per CPU */

/* The trace limits: -DMAX_TEXT=... from mempolicy.trace.limits.c_defines(). */
#if !defined(MAX_TEXT) || !defined(MAX_TOKENS) || !defined(MAX_CMDS) || \
    !defined(MAX_NAMES) || !defined(MAX_FORK_DEPTH) || !defined(MAX_PAGES) || \
    !defined(MAX_WORD)
#error "build with the -D flags of mempolicy.trace.limits.c_defines()"
#endif
#define RAW_IN_BYTES 65536        /* raw MASK buffer for set_mempolicy/mbind */
#define RAW_OUT_BYTES (1 << 20)   /* raw get_mempolicy buffer, guard page after */
#define OUT_BYTES (1 << 20)
#define MAPS_CHUNK 65536
#define STACK_PREFAULT (512 * 1024)

struct cmd {
	int line;      /* trace line number, from 1 */
	int tok;       /* index of the first token */
	int ntok;      /* number of tokens */
	int mmap_k;    /* k of an mmap line (its index among mmap lines) */
	int exit_at;   /* for fork: index of the matching exit command, or -1 */
};

struct name {
	char *name;
	unsigned long start;   /* requested start address (mappings) */
	unsigned long pages;
	int fd;                /* memfd, or -1 */
	int is_memfd;
};

static char text[MAX_TEXT + 1];
static char *tokens[MAX_TOKENS];
static struct cmd cmds[MAX_CMDS];
static int ncmds;
static struct name names[MAX_NAMES];
static int nnames;

static char out[OUT_BYTES];
static size_t outlen;
static char mapsbuf[MAPS_CHUNK * 2 + 1];
static unsigned long mask_a[MASK_WORDS], mask_b[MASK_WORDS];
static unsigned long raw_in[RAW_IN_BYTES / 8];
static void *mp_pages[MAX_PAGES];
static int mp_nodes[MAX_PAGES];
static int mp_status[MAX_PAGES];
static unsigned char *raw_out_end;  /* first byte of the unmapped guard page */

static sigjmp_buf touch_env;
static volatile sig_atomic_t touch_sig;
static int in_child;

/* ---- small helpers ---------------------------------------------------- */

static void die(const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (write(2, "runner: ", 8) < 0 || write(2, buf, n) < 0)
		_exit(2);
	_exit(2);
}

static void flush_out(void);

/* Output is buffered per line; a very long line is written in pieces. */
static void out_raw(const char *s, size_t n)
{
	while (n) {
		size_t k;
		if (outlen == sizeof out)
			flush_out();
		k = n < sizeof out - outlen ? n : sizeof out - outlen;
		memcpy(out + outlen, s, k);
		outlen += k;
		s += k;
		n -= k;
	}
}

static void out_str(const char *s)
{
	out_raw(s, strlen(s));
}

static void vout_fmt(const char *fmt, va_list ap)
{
	char buf[4096];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);

	if (n > 0)
		out_raw(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void out_fmt(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout_fmt(fmt, ap);
	va_end(ap);
}

/* Write the buffered output and reset it. */
static void flush_out(void)
{
	size_t off = 0;

	while (off < outlen) {
		ssize_t w = write(1, out + off, outlen - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		off += w;
	}
	outlen = 0;
}

static const char *cmd_word(const struct cmd *c)
{
	return tokens[c->tok];
}

/* Start an output line "LINE COMMAND:". */
static void begin_line(const struct cmd *c)
{
	if (strcmp(cmd_word(c), "raw") == 0 && c->ntok > 1)
		out_fmt("%d raw-%s:", c->line, tokens[c->tok + 1]);
	else
		out_fmt("%d %s:", c->line, cmd_word(c));
}

static const char *errname(int e)
{
	const char *s = strerrorname_np(e);
	static char buf[32];

	if (s)
		return s;
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

/* A whole one-line result. */
static void result(const struct cmd *c, const char *fmt, ...)
{
	va_list ap;

	begin_line(c);
	out_raw(" ", 1);
	va_start(ap, fmt);
	vout_fmt(fmt, ap);
	va_end(ap);
	out_raw("\n", 1);
	flush_out();
}

static void result_rc(const struct cmd *c, long rc, int e)
{
	if (rc < 0)
		result(c, "%s", errname(e));
	else
		result(c, "ok");
}

/* ---- parsing ---------------------------------------------------------- */

static int parse_u64(const char *s, unsigned long *v)
{
	unsigned long r = 0;
	int base = 10, any = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (; *s; s++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -1;
		r = r * base + d;
		any = 1;
	}
	if (!any)
		return -1;
	*v = r;
	return 0;
}

static unsigned long num(const char *s)
{
	unsigned long v;

	if (parse_u64(s, &v))
		die("bad number '%s'", s);
	return v;
}

/* Parse a node list ("0-2,5" or "-") into a 1024-bit mask. */
static void nodelist(const char *s, unsigned long *mask)
{
	char item[MAX_WORD + 1];

	memset(mask, 0, MASK_WORDS * 8);
	if (strcmp(s, "-") == 0)
		return;
	while (*s) {
		size_t n = strcspn(s, ",");
		unsigned long a, b;
		char *dash;

		if (n == 0 || n >= sizeof item)
			die("bad node list");
		memcpy(item, s, n);
		item[n] = 0;
		dash = strchr(item, '-');
		if (dash) {
			*dash = 0;
			a = num(item);
			b = num(dash + 1);
		} else {
			a = b = num(item);
		}
		if (b >= MASK_BITS || a > b)
			die("bad node list");
		for (; a <= b; a++)
			mask[a / 64] |= 1UL << (a % 64);
		s += n;
		if (*s == ',')
			s++;
	}
}

/* Append a mask in kernel list syntax ("0-2,5"); nothing when empty. */
static void out_list(const unsigned long *mask, int bits)
{
	int i = 0, first = 1;

	while (i < bits) {
		int j;
		if (!(mask[i / 64] >> (i % 64) & 1)) {
			i++;
			continue;
		}
		j = i;
		while (j + 1 < bits && (mask[(j + 1) / 64] >> ((j + 1) % 64) & 1))
			j++;
		out_fmt(first ? "%d" : ",%d", i);
		if (j > i)
			out_fmt("-%d", j);
		first = 0;
		i = j + 1;
	}
}

static struct name *find_name(const char *s)
{
	for (int i = 0; i < nnames; i++)
		if (strcmp(names[i].name, s) == 0)
			return &names[i];
	die("unknown name '%s'", s);
	return NULL;
}

static struct name *new_name(const char *s)
{
	if (nnames >= MAX_NAMES)
		die("too many names");
	names[nnames].name = (char *)s;
	names[nnames].fd = -1;
	return &names[nnames++];
}

/* "NAME+OFF" → address of NAME's start plus OFF * unit. */
static unsigned long name_plus(const char *s, unsigned long unit)
{
	char buf[MAX_WORD + 1];
	const char *plus = strchr(s, '+');
	size_t n = plus ? (size_t)(plus - s) : strlen(s);
	unsigned long off = 0;

	if (n >= sizeof buf)
		die("bad address '%s'", s);
	memcpy(buf, s, n);
	buf[n] = 0;
	if (plus)
		off = num(plus + 1);
	return find_name(buf)->start + off * unit;
}

static const char *mode_names[] = {
	"default", "preferred", "bind", "interleave", "local",
	"preferred_many", "weighted_interleave",
};

static int parse_mode(const char *s)
{
	for (unsigned i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
		if (strcmp(s, mode_names[i]) == 0)
			return i;
	die("unknown mode '%s'", s);
	return -1;
}

static int mode_flag(const char *s)
{
	if (strcmp(s, "static") == 0)
		return MPOL_F_STATIC_NODES;
	if (strcmp(s, "relative") == 0)
		return MPOL_F_RELATIVE_NODES;
	if (strcmp(s, "balancing") == 0)
		return MPOL_F_NUMA_BALANCING;
	return 0;
}

static void out_mode(int mode)
{
	int base = mode & ~(MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING);

	if (base >= 0 && base < (int)(sizeof mode_names / sizeof *mode_names))
		out_str(mode_names[base]);
	else
		out_fmt("%d", base);
	if (mode & MPOL_F_STATIC_NODES)
		out_str("+static");
	if (mode & MPOL_F_RELATIVE_NODES)
		out_str("+relative");
	if (mode & MPOL_F_NUMA_BALANCING)
		out_str("+balancing");
}

/*
 * Split the trace (LEN bytes) into commands; header lines and comments are
 * skipped.  The same steps and messages as scan_text() in trace/parser.py.
 */
static void parse_trace(size_t len)
{
	char *p = text, *end = text + len;
	int line = 0, ntokens = 0, nmmap = 0, nnamed = 0, in_header = 1;
	int stack[MAX_FORK_DEPTH], depth = 0;   /* open forks */

	if (len >= MAX_TEXT)
		die("line 1: the trace is larger than %d bytes", MAX_TEXT - 1);
	while (p < end) {
		char *eol = memchr(p, '\n', end - p);
		char *stop = eol ? eol : end, *hash;
		int first = ntokens, comment = 0;

		line++;
		if (stop > p && stop[-1] == '\r')
			stop--;
		for (char *q = p; q < stop; q++) {
			unsigned char ch = *q;
			if (ch == '#')
				comment = 1;
			else if (ch == 0)
				die("line %d: NUL byte", line);
			else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				die("line %d: control character 0x%02x", line, ch);
			else if (ch >= 0x80 && !comment)
				die("line %d: non-ASCII character outside a comment", line);
		}
		*stop = 0;
		hash = strchr(p, '#');
		if (hash)
			*hash = 0;
		for (char *q = p; *q;) {
			while (*q == ' ' || *q == '\t')
				*q++ = 0;
			if (!*q)
				break;
			if (ntokens >= MAX_TOKENS)
				die("line %d: more than %d words in commands", line, MAX_TOKENS);
			tokens[ntokens++] = q;
			while (*q && *q != ' ' && *q != '\t')
				q++;
			if (q - tokens[ntokens - 1] > MAX_WORD)
				die("line %d: a word longer than %d characters", line, MAX_WORD);
		}
		p = eol ? eol + 1 : end;
		if (ntokens == first)
			continue;
		if (in_header && (strcmp(tokens[first], "node") == 0 ||
				  strcmp(tokens[first], "distance") == 0 ||
				  strcmp(tokens[first], "hmat") == 0)) {
			ntokens = first;
			continue;
		}
		in_header = 0;
		if (ncmds >= MAX_CMDS)
			die("line %d: more than %d commands", line, MAX_CMDS);
		cmds[ncmds] = (struct cmd){ line, first, ntokens - first, -1, -1 };
		if (strcmp(tokens[first], "mmap") == 0 || strcmp(tokens[first], "memfd") == 0) {
			if (nnamed >= MAX_NAMES)
				die("line %d: more than %d mmap and memfd lines", line, MAX_NAMES);
			nnamed++;
		}
		if (strcmp(tokens[first], "mmap") == 0)
			cmds[ncmds].mmap_k = nmmap++;
		if (strcmp(tokens[first], "fork") == 0) {
			if (depth >= MAX_FORK_DEPTH)
				die("line %d: forks nested more than %d deep", line, MAX_FORK_DEPTH);
			stack[depth++] = ncmds;
		} else if (strcmp(tokens[first], "exit") == 0 && depth > 0) {
			cmds[stack[--depth]].exit_at = ncmds;
		}
		ncmds++;
	}
}

/* --parse-only: each command as "LINE WORD WORD...". */
static void print_commands(void)
{
	for (int i = 0; i < ncmds; i++) {
		out_fmt("%d", cmds[i].line);
		for (int t = 0; t < cmds[i].ntok; t++) {
			out_raw(" ", 1);
			out_str(tokens[cmds[i].tok + t]);
		}
		out_raw("\n", 1);
	}
	flush_out();
}

/* ---- the machine conditions ------------------------------------------ */

static int pin_tid(pid_t tid, int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE) {
		errno = EINVAL;
		return -1;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof set, &set);
}

static int pin_cpu(int cpu)
{
	return pin_tid(0, cpu);
}

static __attribute__((noinline)) void grow_stack(void)
{
	volatile char buf[STACK_PREFAULT];

	for (size_t i = 0; i < sizeof buf; i += PAGE)
		buf[i] = 0;
}

/* Fault in every page of every mapping the process has (COW broken). */
static void prefault(void)
{
	static char maps[65536];
	int fd = open("/proc/self/maps", O_RDONLY);
	size_t len = 0;
	char *p;

	if (fd < 0)
		die("cannot open /proc/self/maps");
	for (;;) {
		ssize_t r = read(fd, maps + len, sizeof maps - 1 - len);
		if (r <= 0)
			break;
		len += r;
	}
	close(fd);
	maps[len] = 0;
	for (p = maps; *p;) {
		unsigned long a, b;
		char perms[8];
		char *eol = strchr(p, '\n');

		if (sscanf(p, "%lx-%lx %7s", &a, &b, perms) == 3 &&
		    !strstr(p, "[vvar") && !strstr(p, "[vdso]") &&
		    !strstr(p, "[vsyscall]") && perms[0] == 'r') {
			for (unsigned long x = a; x < b; x += PAGE) {
				volatile char *c = (volatile char *)x;
				char v = *c;
				if (perms[1] == 'w')
					*c = v;
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
}

/*
 * Empty every CPU's LRU batches (mm/swap.c cpu_fbatches): migrate_pages from
 * no node at all does nothing but lru_cache_disable(), which drains them all.
 * A page still held by a batch is not reused by a write fault after fork
 * (wp_can_reuse_anon_folio counts references), so the trace must start with
 * them empty, whatever the processes before it left there.
 */
static void drain_lru_batches(void)
{
	static uint64_t none[MASK_WORDS], node0[MASK_WORDS] = { 1 };

	if (syscall(NR_MIGRATE_PAGES, 0, HL_MAXNODE, none, node0) < 0)
		die("cannot drain the LRU batches: %s", strerror(errno));
}

/*
 * On each online CPU, create and close memfds until the next inode number
 * is a multiple of INO_ALIGN (and leaves room before the end of the
 * per-CPU batch), so that the k-th shared object a trace creates on a CPU
 * has inode number == k (mod INO_ALIGN).
 */
static void align_inodes(void)
{
	cpu_set_t orig;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	CPU_ZERO(&orig);
	sched_getaffinity(0, sizeof orig, &orig);
	for (int cpu = 0; cpu < ncpu && cpu < CPU_SETSIZE; cpu++) {
		if (pin_cpu(cpu))
			continue;
		for (long tries = 0;; tries++) {
			struct stat st;
			int fd = memfd_create("align", 0);
			unsigned long next;

			if (fd < 0 || fstat(fd, &st))
				die("memfd_create for inode alignment failed");
			close(fd);
			next = st.st_ino + 1;
			if (next % INO_ALIGN == 0 && next % INO_BATCH != 0 &&
			    next % INO_BATCH <= INO_BATCH - INO_ROOM)
				break;
			if (tries > 100L * INO_ALIGN)
				die("inode alignment does not converge on CPU %d", cpu);
		}
	}
	sched_setaffinity(0, sizeof orig, &orig);
}

static void touch_handler(int sig)
{
	touch_sig = sig;
	siglongjmp(touch_env, 1);
}

/* ---- commands --------------------------------------------------------- */

#define ARG(i) (i < c->ntok ? tokens[c->tok + (i)] : (die("line %d: missing argument", c->line), ""))

static int has_word(const struct cmd *c, int from, const char *w)
{
	for (int i = from; i < c->ntok; i++)
		if (strcmp(tokens[c->tok + i], w) == 0)
			return 1;
	return 0;
}

static void do_mmap(const struct cmd *c)
{
	struct name *n = new_name(ARG(1));
	unsigned long addr = DEFAULT_BASE + (unsigned long)c->mmap_k * DEFAULT_STRIDE;
	int shared = 0, private = 0, fd = -1, file = 0, flags = MAP_FIXED_NOREPLACE;
	unsigned long off = 0;
	void *r;

	n->pages = num(ARG(2));
	for (int i = 3; i < c->ntok; i++) {
		const char *w = tokens[c->tok + i];
		if (strcmp(w, "shared") == 0)
			shared = 1;
		else if (strcmp(w, "private") == 0)
			private = 1;
		else if (w[0] == '@')
			addr = num(w + 1);
		else if (strncmp(w, "file=", 5) == 0)
			fd = find_name(w + 5)->fd, file = 1;
		else if (strncmp(w, "off=", 4) == 0)
			off = num(w + 4);
		else
			die("line %d: bad mmap option '%s'", c->line, w);
	}
	n->start = addr;
	if (file)
		shared = !private;
	flags |= shared ? MAP_SHARED : MAP_PRIVATE;
	if (!file)
		flags |= MAP_ANONYMOUS;
	r = mmap((void *)addr, n->pages * PAGE, PROT_READ | PROT_WRITE, flags, fd, off * PAGE);
	if (r == MAP_FAILED) {
		result(c, "%s", errname(errno));
		return;
	}
	if ((unsigned long)r != addr) {
		/* A kernel without MAP_FIXED_NOREPLACE: treat as EEXIST. */
		munmap(r, n->pages * PAGE);
		result(c, "EEXIST");
		return;
	}
	result(c, "ok");
}

static void do_memfd(const struct cmd *c)
{
	struct name *n = new_name(ARG(1));
	int fd;

	n->is_memfd = 1;
	n->pages = num(ARG(2));
	fd = memfd_create(n->name, 0);
	if (fd < 0) {
		result(c, "%s", errname(errno));
		return;
	}
	/* The memfd stays even when ftruncate fails: it was created. */
	n->fd = fd;
	if (ftruncate(fd, n->pages * PAGE)) {
		result(c, "%s", errname(errno));
		return;
	}
	result(c, "ok");
}

static void range(const struct cmd *c, int at, unsigned long *start, unsigned long *len)
{
	struct name *n = find_name(ARG(at));

	*start = n->start + num(ARG(at + 1)) * PAGE;
	*len = num(ARG(at + 2)) * PAGE;
}

static void do_munmap(const struct cmd *c)
{
	unsigned long s, l;
	long rc;

	range(c, 1, &s, &l);
	rc = munmap((void *)s, l);
	result_rc(c, rc, errno);
}

static void do_mprotect(const struct cmd *c)
{
	unsigned long s, l;
	const char *p = ARG(4);
	int prot;
	long rc;

	range(c, 1, &s, &l);
	if (strcmp(p, "ro") == 0)
		prot = PROT_READ;
	else if (strcmp(p, "rw") == 0)
		prot = PROT_READ | PROT_WRITE;
	else
		die("line %d: bad protection '%s'", c->line, p);
	rc = mprotect((void *)s, l, prot);
	result_rc(c, rc, errno);
}

/* MODE NODES [FLAG...] starting at token i; other words go to *mflags. */
static int mode_and_mask(const struct cmd *c, int i, unsigned long *mask, unsigned *mflags)
{
	int mode = parse_mode(ARG(i));

	nodelist(ARG(i + 1), mask);
	for (int j = i + 2; j < c->ntok; j++) {
		const char *w = tokens[c->tok + j];
		int f = mode_flag(w);
		if (f)
			mode |= f;
		else if (mflags && strcmp(w, "strict") == 0)
			*mflags |= MPOL_MF_STRICT;
		else if (mflags && strcmp(w, "move") == 0)
			*mflags |= MPOL_MF_MOVE;
		else if (mflags && strcmp(w, "move_all") == 0)
			*mflags |= MPOL_MF_MOVE_ALL;
		else
			die("line %d: bad flag '%s'", c->line, w);
	}
	return mode;
}

static void do_set_mempolicy(const struct cmd *c)
{
	int mode = mode_and_mask(c, 1, mask_a, NULL);
	long rc = syscall(NR_SET_MEMPOLICY, mode, mask_a, HL_MAXNODE);

	result_rc(c, rc, errno);
}

static void do_mbind(const struct cmd *c)
{
	unsigned long s, l;
	unsigned mflags = 0;
	int mode;
	long rc;

	range(c, 1, &s, &l);
	mode = mode_and_mask(c, 4, mask_a, &mflags);
	rc = syscall(NR_MBIND, s, l, mode, mask_a, HL_MAXNODE, mflags);
	result_rc(c, rc, errno);
}

static void do_home_node(const struct cmd *c)
{
	unsigned long s, l;
	long rc;

	range(c, 1, &s, &l);
	rc = syscall(NR_SET_MEMPOLICY_HOME_NODE, s, l, num(ARG(4)), 0UL);
	result_rc(c, rc, errno);
}

static void do_get_mempolicy(const struct cmd *c)
{
	unsigned long addr = 0, flags = 0;
	int mode = 0;
	long rc;

	for (int i = 1; i < c->ntok; i++) {
		const char *w = tokens[c->tok + i];
		if (strncmp(w, "at=", 3) == 0) {
			addr = name_plus(w + 3, PAGE);
			flags |= MPOL_F_ADDR;
		} else if (strcmp(w, "node") == 0) {
			flags |= MPOL_F_NODE;
		} else if (strcmp(w, "mems_allowed") == 0) {
			flags |= MPOL_F_MEMS_ALLOWED;
		} else {
			die("line %d: bad get_mempolicy option '%s'", c->line, w);
		}
	}
	memset(mask_a, 0, sizeof mask_a);
	rc = syscall(NR_GET_MEMPOLICY, &mode, mask_a, HL_MAXNODE, addr, flags);
	if (rc < 0) {
		result(c, "%s", errname(errno));
		return;
	}
	begin_line(c);
	if (flags & MPOL_F_NODE) {
		out_fmt(" node=%d", mode);
	} else if (flags & MPOL_F_MEMS_ALLOWED) {
		out_str(" nodes=");
		out_list(mask_a, MASK_BITS);
	} else {
		out_str(" mode=");
		out_mode(mode);
		out_str(" nodes=");
		out_list(mask_a, MASK_BITS);
	}
	out_raw("\n", 1);
	flush_out();
}

static void do_touch(const struct cmd *c)
{
	unsigned long s, l;
	volatile int rd = has_word(c, 4, "read");
	struct sigaction sa;

	range(c, 1, &s, &l);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = touch_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	touch_sig = 0;
	if (sigsetjmp(touch_env, 1) == 0) {
		for (unsigned long a = s; a < s + l; a += PAGE) {
			volatile char *p = (volatile char *)a;
			if (rd)
				(void)*p;
			else
				*p = 1;
		}
	}
	sa.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	if (touch_sig == SIGSEGV)
		result(c, "SIGSEGV");
	else if (touch_sig == SIGBUS)
		result(c, "SIGBUS");
	else
		result(c, "ok");
}

static void out_status(unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		if (mp_status[i] >= 0)
			out_fmt(" %d", mp_status[i]);
		else
			out_fmt(" %s", errname(-mp_status[i]));
	}
}

/* A trailing "parent": the call targets the parent process, else the caller (0). */
static pid_t target_pid(const struct cmd *c)
{
	return strcmp(tokens[c->tok + c->ntok - 1], "parent") == 0 ? getppid() : 0;
}

/* where (move == 0) and move_pages (move == 1). */
static void do_pages(const struct cmd *c, int move)
{
	unsigned long s, l, n;
	int node = 0, flags = 0;
	pid_t pid;
	long rc;

	range(c, 1, &s, &l);
	n = l / PAGE;
	if (n > MAX_PAGES)
		die("line %d: too many pages", c->line);
	if (move) {
		node = (int)num(ARG(4));
		flags = has_word(c, 5, "all") ? MPOL_MF_MOVE_ALL : MPOL_MF_MOVE;
	}
	pid = target_pid(c);
	for (unsigned long i = 0; i < n; i++) {
		mp_pages[i] = (void *)(s + i * PAGE);
		mp_nodes[i] = node;
		mp_status[i] = -12345;
	}
	rc = syscall(NR_MOVE_PAGES, pid, n, mp_pages, move ? mp_nodes : NULL, mp_status, flags);
	if (rc < 0) {
		result(c, "%s", errname(errno));
		return;
	}
	begin_line(c);
	out_status(n);
	out_raw("\n", 1);
	flush_out();
}

static void do_migrate_pages(const struct cmd *c)
{
	long rc;

	nodelist(ARG(1), mask_a);
	nodelist(ARG(2), mask_b);
	rc = syscall(NR_MIGRATE_PAGES, target_pid(c), HL_MAXNODE, mask_a, mask_b);
	if (rc < 0)
		result(c, "%s", errname(errno));
	else
		result(c, "%ld", rc);
}

/* "uid=R[,E,S]" or "gid=R[,E,S]": three ids (one id stands for all three). */
static void cred_ids(const char *s, unsigned long id[3])
{
	char buf[96], *p = buf, *comma;
	int n = 0;

	snprintf(buf, sizeof buf, "%s", s);
	for (; n < 3; n++) {
		comma = strchr(p, ',');
		if (comma)
			*comma = 0;
		id[n] = num(p);
		if (!comma)
			break;
		p = comma + 1;
	}
	if (n == 0)
		id[1] = id[2] = id[0];
}

/* cred [uid=..] [gid=..] [drop=CAP,..]: setresgid, setresuid, then capset. */
static void do_cred(const struct cmd *c)
{
	static const struct { const char *name; int cap; } caps[] = {
		{ "sys_nice", CAP_SYS_NICE }, { "sys_ptrace", CAP_SYS_PTRACE },
		{ "setuid", CAP_SETUID }, { "setgid", CAP_SETGID },
	};
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned long id[3];
	uint32_t drop[2] = { 0, 0 };
	int have_drop = 0;

	for (int i = 1; i < c->ntok; i++) {
		const char *w = ARG(i);
		if (strncmp(w, "gid=", 4) == 0) {
			cred_ids(w + 4, id);
			if (syscall(SYS_setresgid, id[0], id[1], id[2]) < 0) {
				result(c, "%s", errname(errno));
				return;
			}
		}
	}
	for (int i = 1; i < c->ntok; i++) {
		const char *w = ARG(i);
		if (strncmp(w, "uid=", 4) == 0) {
			cred_ids(w + 4, id);
			if (syscall(SYS_setresuid, id[0], id[1], id[2]) < 0) {
				result(c, "%s", errname(errno));
				return;
			}
		} else if (strncmp(w, "drop=", 5) == 0) {
			char buf[128], *tok, *save;

			have_drop = 1;
			snprintf(buf, sizeof buf, "%s", w + 5);
			for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				int k, found = strcmp(tok, "all") == 0;

				if (found)
					drop[0] = drop[1] = ~0u;
				for (k = 0; !found && k < (int)(sizeof caps / sizeof *caps); k++)
					if (strcmp(tok, caps[k].name) == 0) {
						drop[caps[k].cap / 32] |= 1u << (caps[k].cap % 32);
						found = 1;
					}
				if (!found)
					die("line %d: unknown capability '%s'", c->line, tok);
			}
		}
	}
	if (have_drop) {
		if (syscall(SYS_capget, &hdr, data) < 0) {
			result(c, "%s", errname(errno));
			return;
		}
		for (int k = 0; k < 2; k++) {
			data[k].effective &= ~drop[k];
			data[k].permitted &= ~drop[k];
			data[k].inheritable &= ~drop[k];
		}
		if (syscall(SYS_capset, &hdr, data) < 0) {
			result(c, "%s", errname(errno));
			return;
		}
	}
	result(c, "ok");
}

/* Remove the " active=N" field from a numa_maps line (in place). */
static void drop_active(char *s)
{
	char *a = strstr(s, " active=");

	if (a) {
		char *e = a + 1;
		while (*e && *e != ' ')
			e++;
		memmove(a, e, strlen(e) + 1);
	}
}

/* Print one numa_maps line if its VMA starts inside [lo, hi). */
static int numa_maps_line(const struct cmd *c, const struct name *n, char *s, int count)
{
	unsigned long lo = n->start, hi = n->start + n->pages * PAGE, a = 0;
	char *sp = strchr(s, ' ');

	if (!sp)
		return count;
	*sp = 0;
	for (char *h = s; *h; h++) {
		int d = *h >= '0' && *h <= '9' ? *h - '0' : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10 : -1;
		if (d < 0)
			return count;
		a = a * 16 + d;
	}
	if (a < lo || a >= hi)
		return count;
	drop_active(sp + 1);
	if (count)
		out_raw("\n", 1), begin_line(c);
	out_fmt(" %s+%lu ", n->name, (a - lo) / PAGE);
	out_str(sp + 1);
	flush_out();
	return count + 1;
}

static void do_numa_maps(const struct cmd *c)
{
	const struct name *n = find_name(ARG(1));
	int fd = open("/proc/self/numa_maps", O_RDONLY);
	size_t have = 0;
	int eof = 0, count = 0;

	if (fd < 0) {
		result(c, "%s", errname(errno));
		return;
	}
	begin_line(c);
	for (;;) {
		char *nl;

		mapsbuf[have] = 0;
		nl = memchr(mapsbuf, '\n', have);
		if (nl) {
			size_t used = nl - mapsbuf + 1;
			*nl = 0;
			count = numa_maps_line(c, n, mapsbuf, count);
			memmove(mapsbuf, mapsbuf + used, have - used);
			have -= used;
			continue;
		}
		if (eof) {
			if (have)
				count = numa_maps_line(c, n, mapsbuf, count);
			break;
		}
		if (have >= MAPS_CHUNK)
			die("numa_maps line too long");
		{
			ssize_t r = read(fd, mapsbuf + have, MAPS_CHUNK);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				eof = 1;
			else
				have += r;
		}
	}
	close(fd);
	out_raw("\n", 1);
	flush_out();
}

/* Comma-separated hex words (or "null") into buf; returns NULL for null. */
static unsigned long *raw_mask(const char *s)
{
	char item[MAX_WORD + 1];
	size_t w = 0;

	if (strcmp(s, "null") == 0)
		return NULL;
	memset(raw_in, 0, sizeof raw_in);
	while (*s) {
		size_t n = strcspn(s, ",");
		if (n == 0 || n >= sizeof item)
			die("bad raw mask");
		memcpy(item, s, n);
		item[n] = 0;
		/* The kernel reads at most 4096 bytes: later words never matter. */
		if (w < sizeof raw_in / 8)
			raw_in[w++] = num(item);
		s += n;
		if (*s == ',')
			s++;
	}
	return raw_in;
}

static void do_raw(const struct cmd *c)
{
	const char *call = ARG(1);
	long rc;

	if (strcmp(call, "set_mempolicy") == 0) {
		int mode = (int)num(ARG(2));
		unsigned long *m = raw_mask(ARG(3));
		rc = syscall(NR_SET_MEMPOLICY, mode, m, num(ARG(4)));
		result_rc(c, rc, errno);
	} else if (strcmp(call, "mbind") == 0) {
		unsigned long s = find_name(ARG(2))->start + num(ARG(3));
		unsigned long len = num(ARG(4));
		int mode = (int)num(ARG(5));
		unsigned long *m = raw_mask(ARG(6));
		unsigned long maxnode = num(ARG(7));
		unsigned flags = (unsigned)num(ARG(8));
		rc = syscall(NR_MBIND, s, len, mode, m, maxnode, flags);
		result_rc(c, rc, errno);
	} else if (strcmp(call, "get_mempolicy") == 0) {
		const char *bits = ARG(2);
		unsigned long maxnode = num(ARG(3));
		const char *a = ARG(4);
		unsigned long flags = num(ARG(5));
		unsigned long addr = (a[0] >= '0' && a[0] <= '9') ? num(a) : name_plus(a, 1);
		unsigned long *buf = NULL, words = 0;
		int mode = 0;

		if (strcmp(bits, "null") != 0) {
			unsigned long b = num(bits);
			/* The kernel writes at most 4096 bytes, so a buffer larger than
			 * RAW_OUT_BYTES behaves as one of RAW_OUT_BYTES. */
			words = b / 64 + (b % 64 != 0);
			if (words > RAW_OUT_BYTES / 8)
				words = RAW_OUT_BYTES / 8;
			buf = (unsigned long *)(raw_out_end - words * 8);
			memset(buf, 0, words * 8);
		}
		rc = syscall(NR_GET_MEMPOLICY, &mode, buf, maxnode, addr, flags);
		if (rc < 0) {
			result(c, "%s", errname(errno));
			return;
		}
		begin_line(c);
		out_fmt(" rc=%ld mode=%d mask=", rc, mode);
		if (!buf) {
			out_str("null");
		} else {
			long top = (long)words - 1;
			while (top > 0 && buf[top] == 0)
				top--;
			if (top < 0) {
				out_str("0x0");
			} else {
				out_fmt("0x%lx", buf[top]);
				for (long i = top - 1; i >= 0; i--)
					out_fmt("%016lx", buf[i]);
			}
		}
		out_raw("\n", 1);
		flush_out();
	} else {
		die("line %d: unknown raw call '%s'", c->line, call);
	}
}

/* ---- weighted-interleave weights (trace format 5.8) -------------------- */

#define WI_DIR "/sys/kernel/mm/mempolicy/weighted_interleave/"

/* weight NODE|auto VALUE: write "VALUE\n" to the sysfs file. */
static void do_weight(const struct cmd *c)
{
	static char path[64], buf[MAX_WORD + 2];
	const char *which = ARG(1);
	size_t n = strlen(ARG(2));
	ssize_t r;
	int fd;

	if (strcmp(which, "auto") == 0)
		snprintf(path, sizeof path, WI_DIR "auto");
	else
		snprintf(path, sizeof path, WI_DIR "node%lu", num(which));
	memcpy(buf, ARG(2), n);
	buf[n++] = '\n';
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		result(c, "%s", errname(errno));
		return;
	}
	r = write(fd, buf, n);
	if (r < 0)
		result(c, "%s", errname(errno));
	else
		result(c, "ok");
	close(fd);
}

/* Read a small sysfs file into BUF without its newline; 0 if it is absent. */
static int read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0)
		return 0;
	r = read(fd, buf, size - 1);
	close(fd);
	if (r < 0)
		r = 0;
	buf[r] = 0;
	if (r > 0 && buf[r - 1] == '\n')
		buf[r - 1] = 0;
	return 1;
}

/* weights: "auto=true|false" and " N<node>=<weight>" for each nodeN file. */
static void do_weights(const struct cmd *c)
{
	static char path[64], buf[32];

	begin_line(c);
	if (!read_small(WI_DIR "auto", buf, sizeof buf))
		snprintf(buf, sizeof buf, "none");
	out_fmt(" auto=%s", buf);
	for (int nid = 0; nid < MASK_BITS; nid++) {
		snprintf(path, sizeof path, WI_DIR "node%d", nid);
		if (read_small(path, buf, sizeof buf))
			out_fmt(" N%d=%s", nid, buf);
	}
	out_raw("\n", 1);
	flush_out();
}

/* ---- threads and cpusets (trace format 1.3, section 5.7) ------------- */

/*
 * Threads are clone()s sharing the address space, run one at a time: the
 * thread whose index is in cur_thr runs the next command; the others wait
 * on that word with a futex.  They share the runner's TLS (no CLONE_SETTLS),
 * which is safe because only one of them runs at any time.  Their stacks
 * are mapped and faulted in before the trace starts, and only for a trace
 * that creates threads (such a trace has no fork), so a trace without them
 * sees the runner's memory exactly as before.
 */
#define MAX_THREADS 32
#define THREAD_STACK (64 * 1024)

struct thr {
	const char *name;
	pid_t tid;
	volatile pid_t ctid;   /* cleared by the kernel when the thread is gone */
	int cpu;               /* the CPU the thread is pinned to */
	int live, end;
};

static struct thr thr[MAX_THREADS] = { { "main", 0, 0, 0, 1, 0 } };
static int nthr = 1;
static volatile int cur_thr;   /* the thread that runs the next command */
static volatile int next_cmd;  /* the next command to run */
static char *thread_stacks;
static int cg_made, cg_joined;
static char cg_dir[64];
static cpu_set_t cg_cpus;      /* the group's CPUs (all when none are given) */

static int has_threads(void)
{
	for (int i = 0; i < ncmds; i++)
		if (strcmp(cmd_word(&cmds[i]), "thread") == 0)
			return 1;
	return 0;
}

static void map_thread_stacks(void)
{
	thread_stacks = mmap(NULL, (size_t)MAX_THREADS * THREAD_STACK, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (thread_stacks == MAP_FAILED)
		die("cannot map the thread stacks");
}

static long futex(volatile int *addr, int op, int val)
{
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* Wait until SELF may run; 0 when SELF is to end instead. */
static int wait_turn(int self)
{
	for (;;) {
		int c = __atomic_load_n(&cur_thr, __ATOMIC_ACQUIRE);
		if (c == self)
			return !thr[self].end;
		futex(&cur_thr, FUTEX_WAIT_PRIVATE, c);
	}
}

static void give_turn(int to)
{
	__atomic_store_n(&cur_thr, to, __ATOMIC_RELEASE);
	futex(&cur_thr, FUTEX_WAKE_PRIVATE, MAX_THREADS);
}

static int find_thread(const struct cmd *c, const char *s)
{
	for (int i = 0; i < nthr; i++)
		if (thr[i].live && strcmp(thr[i].name, s) == 0)
			return i;
	die("line %d: unknown thread '%s'", c->line, s);
	return -1;
}

static void run_from(int self);

static int thread_main(void *arg)
{
	int self = (int)(long)arg;

	run_from(self);
	if (thr[self].end)
		return 0;      /* the clone wrapper ends this thread only */
	flush_out();
	_exit(0);          /* the trace ended in this thread: end the process */
}

/* thread T: clone(CLONE_VM | CLONE_THREAD | ...) running T's commands when its turn comes. */
static void do_thread(const struct cmd *c, int me)
{
	int k = nthr, flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
		CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;

	if (k >= MAX_THREADS)
		die("line %d: more than %d threads", c->line, MAX_THREADS);
	thr[k] = (struct thr){ ARG(1), 0, 0, thr[me].cpu, 1, 0 };
	nthr++;
	if (clone(thread_main, thread_stacks + (size_t)(k + 1) * THREAD_STACK, flags, (void *)(long)k,
		  &thr[k].tid, NULL, &thr[k].ctid) < 0) {
		thr[k].live = 0;
		result(c, "%s", errname(errno));
		return;
	}
	result(c, "ok");
}

/* switch T: the following commands run in thread T. */
static void do_switch(const struct cmd *c, int self)
{
	int t = find_thread(c, ARG(1));

	result(c, "ok");
	if (t != self)
		give_turn(t);
}

/* thread_exit T: thread T ends (it calls exit); the caller waits until it is gone. */
static void do_thread_exit(const struct cmd *c, int self)
{
	int t = find_thread(c, ARG(1));

	thr[t].end = 1;
	give_turn(t);
	for (;;) {
		pid_t v = thr[t].ctid;
		if (v == 0)
			break;
		futex((volatile int *)&thr[t].ctid, FUTEX_WAIT, v);
	}
	thr[t].live = 0;
	__atomic_store_n(&cur_thr, self, __ATOMIC_RELEASE);
	result(c, "ok");
}

static int write_text(const char *dir, const char *file, const char *text)
{
	char path[128];
	int fd, e = 0;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	if (write(fd, text, strlen(text)) < 0)
		e = errno;
	close(fd);
	return e;
}

/* "0-2,5" into a cpu_set_t (the trace checked the syntax). */
static void cpu_list(const char *s, cpu_set_t *set)
{
	unsigned long mask[MASK_WORDS];

	nodelist(s, mask);
	CPU_ZERO(set);
	for (int i = 0; i < MASK_BITS && i < CPU_SETSIZE; i++)
		if (mask[i / 64] >> (i % 64) & 1)
			CPU_SET(i, set);
}

/*
 * cpuset mems=LIST [cpus=LIST]: the first one mounts cgroup2 if needed,
 * enables the cpuset controller, creates a group and moves the process into
 * it (all threads follow); every one writes cpuset.cpus, then cpuset.mems.
 * The kernel resets the affinity of the group's threads when it moves them
 * or changes the group's masks, so each thread is pinned again: to its CPU
 * if the group has it, else to the group's lowest CPU.
 */
static void do_cpuset(const struct cmd *c)
{
	const char *mems = NULL, *cpus = NULL;
	int e;

	for (int i = 1; i < c->ntok; i++) {
		const char *w = ARG(i);
		if (strncmp(w, "mems=", 5) == 0)
			mems = w + 5;
		else if (strncmp(w, "cpus=", 5) == 0)
			cpus = w + 5;
		else
			die("line %d: bad cpuset option '%s'", c->line, w);
	}
	if (!cg_made) {
		if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) &&
		    mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL))
			die("cannot mount cgroup2: %s", strerror(errno));
		if ((e = write_text("/sys/fs/cgroup", "cgroup.subtree_control", "+cpuset")))
			die("cannot enable the cpuset controller: %s", strerror(e));
		snprintf(cg_dir, sizeof cg_dir, "/sys/fs/cgroup/mempolicy-%d", (int)getpid());
		if (mkdir(cg_dir, 0755))
			die("cannot create %s: %s", cg_dir, strerror(errno));
		cg_made = 1;
		CPU_ZERO(&cg_cpus);
		for (int i = 0; i < CPU_SETSIZE && i < sysconf(_SC_NPROCESSORS_CONF); i++)
			CPU_SET(i, &cg_cpus);
	}
	if (cpus) {
		if ((e = write_text(cg_dir, "cpuset.cpus", cpus))) {
			result(c, "%s", errname(e));
			return;
		}
		cpu_list(cpus, &cg_cpus);
	}
	if (mems && (e = write_text(cg_dir, "cpuset.mems", mems))) {
		result(c, "%s", errname(e));
		return;
	}
	if (!cg_joined) {
		char pid[32];

		snprintf(pid, sizeof pid, "%d", (int)getpid());
		if ((e = write_text(cg_dir, "cgroup.procs", pid))) {
			result(c, "%s", errname(e));
			return;
		}
		cg_joined = 1;
	}
	for (int i = 0; i < nthr; i++) {
		int cpu = thr[i].cpu;

		if (!thr[i].live)
			continue;
		if (!CPU_ISSET(cpu, &cg_cpus))
			for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &cg_cpus); cpu++)
				;
		thr[i].cpu = cpu;
		if (pin_tid(thr[i].tid, cpu))
			die("cannot pin thread %s to CPU %d: %s", thr[i].name, cpu, strerror(errno));
	}
	result(c, "ok");
}

/* ---- transparent huge pages (trace format 1.3, section 5.9) ------------ */

#define THP_DIR "/sys/kernel/mm/transparent_hugepage/"
#define THP_DIRTY "/tmp/thp-dirty"        /* /init restores the boot settings */
#define THP_HELPER_DONE "/tmp/thp-helper"
#define THP_HELPER_BASE 0x100000000000UL
#define THP_HELPER_BYTES (1UL << 40)      /* 1 TiB of empty, madvised address space */

/*
 * khugepaged must not collapse the trace's small pages behind its back.  Its
 * sleeps are set to the maximum before it ever runs, so once it has work it
 * never wakes by itself; it still scans on each start and when the list of
 * registered mms turns non-empty.  A helper process, started once per boot,
 * registers first with a 1 TiB madvised mapping: it keeps the list non-empty
 * and every scan pass (4096 pages) ends inside its empty mapping, so the
 * trace's mm, registered after it, is never reached.  The helper also holds
 * the huge zero page (allocated by its read fault on node 0), so traces see
 * it already there.
 */
static int thp_helper_main(void)
{
	char *p = mmap((void *)THP_HELPER_BASE, THP_HELPER_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	volatile char v;

	if (p == MAP_FAILED || madvise(p, THP_HELPER_BYTES, MADV_HUGEPAGE))
		return 1;
	v = p[0];
	(void)v;
	if (write(1, "x", 1) != 1)
		return 1;
	for (int fd = 0; fd < 64; fd++)
		close(fd);
	for (;;)
		pause();
}

static int thp_write(const char *file, const char *value)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof path, THP_DIR "%s", file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	return ok ? 0 : -1;
}

/* Before the first command of a trace that uses thp or madvise. */
static void thp_setup(const char *self)
{
	int pfd[2];
	char ack;
	pid_t pid;

	close(open(THP_DIRTY, O_WRONLY | O_CREAT, 0600));
	if (access(THP_HELPER_DONE, F_OK) == 0)
		return;
	if (thp_write("khugepaged/scan_sleep_millisecs", "4294967295") ||
	    thp_write("khugepaged/alloc_sleep_millisecs", "4294967295") ||
	    thp_write("khugepaged/max_ptes_none", "0") ||
	    thp_write("use_zero_page", "1") || thp_write("enabled", "madvise"))
		die("cannot set up transparent huge pages: %s", strerror(errno));
	if (pipe(pfd))
		die("pipe failed");
	pid = vfork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		execl("/proc/self/exe", self, "--thp-helper", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], &ack, 1) != 1)
		die("the khugepaged helper did not start");
	close(pfd[0]);
	if (thp_write("enabled", "never"))
		die("cannot switch transparent huge pages off");
	close(open(THP_HELPER_DONE, O_WRONLY | O_CREAT, 0600));
}

static void do_thp(const struct cmd *c)
{
	const char *file = ARG(1);
	const char *value = ARG(2);

	if (strcmp(file, "enabled") && strcmp(file, "defrag") && strcmp(file, "use_zero_page"))
		die("line %d: bad thp setting '%s'", c->line, file);
	if (thp_write(file, value))
		result(c, "%s", errname(errno));
	else
		result(c, "ok");
}

static void do_madvise(const struct cmd *c)
{
	unsigned long s, l;
	const char *a = ARG(4);
	int advice;
	long rc;

	range(c, 1, &s, &l);
	if (strcmp(a, "hugepage") == 0)
		advice = MADV_HUGEPAGE;
	else if (strcmp(a, "nohugepage") == 0)
		advice = MADV_NOHUGEPAGE;
	else
		die("line %d: bad advice '%s'", c->line, a);
	rc = madvise((void *)s, l, advice);
	result_rc(c, rc, errno);
}

/* ---- main ------------------------------------------------------------- */

/*
 * Run the commands from next_cmd on, as thread SELF (0 is the process's
 * first thread).  Returns when the trace ends or when SELF is told to end.
 */
static void run_from(int self)
{
	for (;;) {
		const struct cmd *c;
		const char *w;
		int i;

		if (!wait_turn(self))
			return;
		if (next_cmd >= ncmds)
			return;
		i = next_cmd++;
		c = &cmds[i];
		w = cmd_word(c);

		if (strcmp(w, "cpu") == 0) {
			long rc = pin_cpu((int)num(ARG(1)));
			if (rc == 0)
				thr[self].cpu = (int)num(ARG(1));
			result_rc(c, rc, errno);
		} else if (strcmp(w, "mmap") == 0) {
			do_mmap(c);
		} else if (strcmp(w, "memfd") == 0) {
			do_memfd(c);
		} else if (strcmp(w, "munmap") == 0) {
			do_munmap(c);
		} else if (strcmp(w, "mprotect") == 0) {
			do_mprotect(c);
		} else if (strcmp(w, "set_mempolicy") == 0) {
			do_set_mempolicy(c);
		} else if (strcmp(w, "mbind") == 0) {
			do_mbind(c);
		} else if (strcmp(w, "home_node") == 0) {
			do_home_node(c);
		} else if (strcmp(w, "get_mempolicy") == 0) {
			do_get_mempolicy(c);
		} else if (strcmp(w, "touch") == 0) {
			do_touch(c);
		} else if (strcmp(w, "where") == 0) {
			do_pages(c, 0);
		} else if (strcmp(w, "move_pages") == 0) {
			do_pages(c, 1);
		} else if (strcmp(w, "migrate_pages") == 0) {
			do_migrate_pages(c);
		} else if (strcmp(w, "numa_maps") == 0) {
			do_numa_maps(c);
		} else if (strcmp(w, "cred") == 0) {
			do_cred(c);
		} else if (strcmp(w, "fork") == 0) {
			pid_t pid = fork();
			if (pid == 0) {
				in_child++;
				result(c, "ok");
				continue;
			}
			if (pid < 0) {
				result(c, "%s", errname(errno));
			} else {
				int st = 0;
				while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
					;
				/* A child that stopped early stops the trace: its
				 * output is incomplete, so the whole run must fail. */
				if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
					_exit(WEXITSTATUS(st));
				if (WIFSIGNALED(st))
					die("the child forked at line %d was killed by signal %d",
					    c->line, WTERMSIG(st));
			}
			if (c->exit_at < 0)
				_exit(0);   /* the child ran to the end of the trace */
			next_cmd = c->exit_at + 1;
		} else if (strcmp(w, "exit") == 0) {
			result(c, "ok");
			if (in_child)
				_exit(0);
		} else if (strcmp(w, "raw") == 0) {
			do_raw(c);
		} else if (strcmp(w, "weight") == 0) {
			do_weight(c);
		} else if (strcmp(w, "weights") == 0) {
			do_weights(c);
		} else if (strcmp(w, "thread") == 0) {
			do_thread(c, self);
		} else if (strcmp(w, "switch") == 0) {
			do_switch(c, self);
		} else if (strcmp(w, "thread_exit") == 0) {
			do_thread_exit(c, self);
		} else if (strcmp(w, "cpuset") == 0) {
			do_cpuset(c);
		} else if (strcmp(w, "thp") == 0) {
			do_thp(c);
		} else if (strcmp(w, "madvise") == 0) {
			do_madvise(c);
		} else {
			die("line %d: unknown command '%s'", c->line, w);
		}
	}
}

static void run(void)
{
	run_from(0);
	if (in_child)
		_exit(0);
	/* The trace ended in another thread: exit_group ends them all. */
	flush_out();
	_exit(0);
}

/* Read the whole trace into text[]; its length (at most MAX_TEXT). */
static size_t read_trace(const char *path)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		die("cannot open %s", path);
	while (len < MAX_TEXT) {
		ssize_t r = read(fd, text + len, MAX_TEXT - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("cannot read %s", path);
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	text[len] = 0;
	return len;
}

/*
 * --probe: is every system call the traces use there?  A kernel built
 * without an option answers its calls with ENOSYS (kernel/sys_ni.c).  Prints
 * one "MISSING OPTION what" line per absent call; status 1 if any.
 */
static int probe(void)
{
	static uint64_t none[MASK_WORDS];
	int missing = 0, fd;

	if (syscall(NR_GET_MEMPOLICY, NULL, NULL, 0UL, 0UL, 0UL) < 0 && errno == ENOSYS) {
		printf("MISSING CONFIG_NUMA get_mempolicy: ENOSYS\n");
		missing = 1;
	}
	if (syscall(NR_MOVE_PAGES, 0, 0UL, NULL, NULL, NULL, 0) < 0 && errno == ENOSYS) {
		printf("MISSING CONFIG_MIGRATION move_pages: ENOSYS\n");
		missing = 1;
	}
	if (syscall(NR_MIGRATE_PAGES, 0, HL_MAXNODE, none, none) < 0 && errno == ENOSYS) {
		printf("MISSING CONFIG_MIGRATION migrate_pages: ENOSYS\n");
		missing = 1;
	}
	if (syscall(NR_SET_MEMPOLICY_HOME_NODE, 0UL, 0UL, 0UL, 1UL) < 0 && errno == ENOSYS) {
		printf("MISSING Linux-5.17 set_mempolicy_home_node: ENOSYS\n");
		missing = 1;
	}
	fd = memfd_create("probe", 0);
	if (fd < 0) {
		printf("MISSING CONFIG_MEMFD_CREATE memfd_create: %s\n", errname(errno));
		missing = 1;
	} else {
		close(fd);
	}
	fflush(stdout);
	return missing;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int align = 1, parse_only = 0;
	long expect = -1;
	unsigned char *guard;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-align") == 0)
			align = 0;
		else if (strcmp(argv[i], "--parse-only") == 0)
			parse_only = 1;
		else if (strcmp(argv[i], "--probe") == 0)
			return probe();
		else if (strcmp(argv[i], "--thp-helper") == 0)
			return thp_helper_main();
		else if (strcmp(argv[i], "--commands") == 0 && i + 1 < argc)
			expect = (long)num(argv[++i]);
		else
			path = argv[i];
	}
	if (!path)
		die("usage: runner [--no-align] [--commands N] [--parse-only] TRACEFILE | --probe");
	if (parse_only) {
		parse_trace(read_trace(path));
		print_commands();
		return 0;
	}

	/* Address randomisation off, as on the oracle machine. */
	if (!(personality(0xffffffff) & ADDR_NO_RANDOMIZE)) {
		personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE);
		execv("/proc/self/exe", argv);
	}
	if (pin_cpu(0))
		die("cannot pin to CPU 0");

	parse_trace(read_trace(path));
	if (expect >= 0 && ncmds != expect)
		die("read %d commands where the parser read %ld", ncmds, expect);

	for (int i = 0; i < ncmds; i++)
		if (strcmp(cmd_word(&cmds[i]), "thp") == 0 || strcmp(cmd_word(&cmds[i]), "madvise") == 0) {
			thp_setup(argv[0]);
			break;
		}

	/* Buffer for raw get_mempolicy, followed by an unmapped page. */
	guard = mmap(NULL, RAW_OUT_BYTES + PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED)
		die("mmap failed");
	munmap(guard + RAW_OUT_BYTES, PAGE);
	raw_out_end = guard + RAW_OUT_BYTES;

	/* Warm up everything the commands use, then fault in all memory. */
	strerrorname_np(EINVAL);
	out_fmt("%d %s %lu %lx", 1, "x", 1UL, 1UL);
	outlen = 0;
	if (align)
		align_inodes();
	grow_stack();
	if (has_threads()) {
		thr[0].tid = (pid_t)syscall(SYS_gettid);
		map_thread_stacks();
	}
	prefault();
	drain_lru_batches();

	run();
	return 0;
}
