/*
 * xstate_check: does FPU/vector state survive (1) a ptrace save/restore through the
 * ptrace() the program is linked with (the lab's uml_xstate.so when preloaded), and
 * (2) context switches on the kernel it runs on (a UML guest)?
 *
 *   xstate_check ptrace LEN        three ptraced children, caller buffers of LEN bytes:
 *                                  roundtrip (GET, SET), modify (xmm3 changed between),
 *                                  two-tasks (another task's state set in between)
 *   xstate_check stress SECS PROCS PROCS processes, each with its own pattern in every
 *                                  vector register, checked after syscalls and spins
 *
 * Registers are loaded with XRSTOR and read back with XSAVE inside one asm block, so
 * no compiled code touches them in between. Compared: x87 and XMM registers, MXCSR,
 * and the AVX, AVX-512 (opmask, ZMM_Hi256, Hi16_ZMM) components the CPU enables.
 * Exit 0 only when every byte of every compared register is as expected.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

/* x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM: the user state a program can hold. */
#define WANTED ((1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (1ULL << 5) | (1ULL << 6) | (1ULL << 7))
static const char *const names[8] = {"x87", "xmm", "ymm_hi128", "bndregs", "bndcsr",
                                     "opmask", "zmm_hi256", "hi16_zmm"};

struct region {
    const char *name;
    size_t offset, size;
};

static uint64_t rfbm;
static size_t xsave_size;
static struct region regions[16];
static int nregions;

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void add_region(const char *name, size_t offset, size_t size)
{
    regions[nregions++] = (struct region){name, offset, size};
}

static int discover(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) {
        fprintf(stderr, "xstate_check: this CPU or kernel has no XSAVE\n");
        return -1;
    }
    rfbm = xgetbv0() & WANTED;
    __cpuid_count(0xd, 0, a, b, c, d);
    xsave_size = b;
    add_region("x87", 32, 128);
    add_region("mxcsr", 24, 4);
    add_region("xmm", 160, 256);
    for (int i = 2; i < 8; i++) {
        if (!(rfbm & (1ULL << i)))
            continue;
        __cpuid_count(0xd, (unsigned)i, a, b, c, d);
        add_region(names[i], b, a);
    }
    return 0;
}

static unsigned char *xbuf(void)
{
    unsigned char *buf = aligned_alloc(64, (xsave_size + 63) & ~(size_t)63);
    if (!buf) {
        perror("aligned_alloc");
        exit(2);
    }
    memset(buf, 0, xsave_size);
    return buf;
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* A standard-format XSAVE image with random registers (seeded), loadable by XRSTOR. */
static void make_pattern(unsigned char *buf, uint64_t seed)
{
    uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;

    memset(buf, 0, xsave_size);
    for (int r = 0; r < nregions; r++)
        for (size_t i = 0; i < regions[r].size; i++)
            buf[regions[r].offset + i] = (unsigned char)next_random(&state);
    for (int st = 0; st < 8; st++)      /* ST0-7: 80 bits in 16-byte slots */
        memset(buf + 32 + 16 * st + 10, 0, 6);
    *(uint16_t *)(buf + 0) = 0x037f;    /* FCW: default */
    *(uint16_t *)(buf + 2) = 0;         /* FSW */
    buf[4] = 0xff;                      /* FTW (abridged): all eight registers valid */
    *(uint32_t *)(buf + 24) = 0x1f80;   /* MXCSR: default, no reserved bit */
    *(uint64_t *)(buf + 512) = rfbm;    /* XSTATE_BV */
}

/* Differences between two images over the compared registers; names them on stderr. */
static int compare(const char *what, const unsigned char *want, const unsigned char *have)
{
    int bad = 0;
    uint64_t have_bv = *(const uint64_t *)(have + 512);

    for (int r = 0; r < nregions; r++) {
        size_t first = (size_t)-1, count = 0;
        for (size_t i = 0; i < regions[r].size; i++) {
            size_t at = regions[r].offset + i;
            if (want[at] != have[at]) {
                if (first == (size_t)-1)
                    first = i;
                count++;
            }
        }
        if (count) {
            fprintf(stderr, "%s: %s differs in %zu of %zu bytes (first at byte %zu)\n", what,
                    regions[r].name, count, regions[r].size, first);
            bad++;
        }
    }
    if ((have_bv & rfbm) != rfbm) {
        fprintf(stderr, "%s: XSTATE_BV %#llx lacks components of %#llx\n", what,
                (unsigned long long)have_bv, (unsigned long long)rfbm);
        bad++;
    }
    return bad;
}

/* Load ``in`` into the registers, stop (SIGSTOP to itself), then save them to ``out``. */
static void load_stop_save(const unsigned char *in, unsigned char *out)
{
    uint32_t lo = (uint32_t)rfbm, hi = (uint32_t)(rfbm >> 32);
    pid_t self = getpid();

    __asm__ volatile(
        "mov %[lo], %%eax\n\t"
        "mov %[hi], %%edx\n\t"
        "xrstor (%[in])\n\t"
        "mov %[self], %%edi\n\t"
        "mov %[sig], %%esi\n\t"
        "mov %[nr_kill], %%eax\n\t"
        "syscall\n\t"
        "mov %[lo], %%eax\n\t"
        "mov %[hi], %%edx\n\t"
        "xsave (%[out])\n\t"
        :
        : [in] "r"(in), [out] "r"(out), [lo] "r"(lo), [hi] "r"(hi), [self] "r"(self),
          [sig] "i"(SIGSTOP), [nr_kill] "i"(62)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory");
}

/* Load ``in``, make ``yields`` sched_yield calls and spin ``spins`` loops, save. */
static void load_churn_save(const unsigned char *in, unsigned char *out, long yields, long spins)
{
    uint32_t lo = (uint32_t)rfbm, hi = (uint32_t)(rfbm >> 32);

    __asm__ volatile(
        "mov %[lo], %%eax\n\t"
        "mov %[hi], %%edx\n\t"
        "xrstor (%[in])\n\t"
        "mov %[yields], %%rsi\n\t"
        "1: test %%rsi, %%rsi\n\t"
        "jz 2f\n\t"
        "mov $24, %%eax\n\t" /* sched_yield */
        "syscall\n\t"
        "dec %%rsi\n\t"
        "jmp 1b\n\t"
        "2: mov %[spins], %%rdi\n\t"
        "3: dec %%rdi\n\t"
        "jnz 3b\n\t"
        "mov %[lo], %%eax\n\t"
        "mov %[hi], %%edx\n\t"
        "xsave (%[out])\n\t"
        :
        : [in] "r"(in), [out] "r"(out), [lo] "r"(lo), [hi] "r"(hi), [yields] "r"(yields),
          [spins] "r"(spins + 1)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r11", "memory", "cc");
}

static long regset(int request, pid_t pid, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return ptrace(request, pid, (void *)NT_X86_XSTATE, &iov);
}

static size_t kernel_size(pid_t pid)
{
    static unsigned char probe[1 << 20];
    struct iovec iov = {.iov_base = probe, .iov_len = sizeof(probe)};
    return ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, &iov) == 0 ? iov.iov_len : 0;
}

/* One ptraced child holding pattern A; the parent acts on it as ``mode`` says. */
static int ptrace_case(const char *mode, size_t len)
{
    unsigned char *a = xbuf(), *b = xbuf(), *want = xbuf(), *have = xbuf();
    unsigned char *task_a = calloc(1, len), *task_b = calloc(1, len), *full;
    int pipefd[2], status, bad = 0;
    size_t full_size;
    pid_t pid;

    make_pattern(a, 1);
    make_pattern(b, 2);
    if (pipe(pipefd) != 0)
        return perror("pipe"), 2;
    pid = fork();
    if (pid == 0) {
        unsigned char *out = xbuf();
        close(pipefd[0]);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0)
            _exit(3);
        load_stop_save(a, out);
        _exit(write(pipefd[1], out, xsave_size) == (ssize_t)xsave_size ? 0 : 4);
    }
    close(pipefd[1]);
    if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
        return fprintf(stderr, "%s: the child did not stop\n", mode), 2;
    full_size = kernel_size(pid);
    memcpy(want, a, xsave_size);

    if (regset(PTRACE_GETREGSET, pid, task_a, len) != 0) {
        fprintf(stderr, "%s: GETREGSET of %zu bytes: %s\n", mode, len, strerror(errno));
        bad++;
    } else if (!strcmp(mode, "modify")) {
        for (int i = 0; i < 16; i++)
            task_a[160 + 3 * 16 + i] ^= 0x5a; /* xmm3 */
        for (int i = 0; i < 16; i++)
            want[160 + 3 * 16 + i] ^= 0x5a;
    } else if (!strcmp(mode, "two-tasks")) {
        /* Another guest task runs on the same host process in between: its whole state
         * is set at full size, then saved through a buffer of its own. */
        full = calloc(1, full_size);
        if (regset(PTRACE_GETREGSET, pid, full, full_size) != 0)
            bad++;
        for (int r = 0; r < nregions; r++)
            memcpy(full + regions[r].offset, b + regions[r].offset, regions[r].size);
        *(uint64_t *)(full + 512) |= rfbm;
        if (regset(PTRACE_SETREGSET, pid, full, full_size) != 0) {
            fprintf(stderr, "%s: full-size SETREGSET: %s\n", mode, strerror(errno));
            bad++;
        }
        if (regset(PTRACE_GETREGSET, pid, task_b, len) != 0)
            bad++;
        free(full);
    }
    if (!bad && regset(PTRACE_SETREGSET, pid, task_a, len) != 0) {
        fprintf(stderr, "%s: SETREGSET of %zu bytes: %s\n", mode, len, strerror(errno));
        bad++;
    }
    ptrace(PTRACE_CONT, pid, 0, 0);
    if (read(pipefd[0], have, xsave_size) != (ssize_t)xsave_size) {
        fprintf(stderr, "%s: the child reported nothing\n", mode);
        bad++;
    } else if (!bad) {
        bad += compare(mode, want, have);
    }
    waitpid(pid, &status, 0);
    close(pipefd[0]);
    printf("%s len=%zu kernel=%zu: %s\n", mode, len, full_size, bad ? "FAILED" : "OK");
    return bad ? 1 : 0;
}

static int stress(double seconds, int procs)
{
    int failed = 0, status;
    pid_t pids[64];

    if (procs < 1 || procs > 64)
        return fprintf(stderr, "1 to 64 processes\n"), 2;
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            unsigned char *in = xbuf(), *out = xbuf();
            struct timespec start, now;
            long rounds = 0, bad = 0;

            make_pattern(in, 100 + (uint64_t)p);
            clock_gettime(CLOCK_MONOTONIC, &start);
            do {
                memset(out, 0, xsave_size);
                load_churn_save(in, out, 4, 200000);
                if (bad == 0 ? compare("stress", in, out) : memcmp(in, out, 512) != 0)
                    bad++;
                rounds++;
                clock_gettime(CLOCK_MONOTONIC, &now);
            } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
            printf("process %d: %ld rounds, %ld with corrupted registers\n", p, rounds, bad);
            fflush(stdout);
            _exit(bad ? 1 : 0);
        }
    }
    for (int p = 0; p < procs; p++)
        if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status) || WEXITSTATUS(status))
            failed++;
    printf("stress: %d processes, %d with corrupted registers: %s\n", procs, failed, failed ? "FAILED" : "OK");
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    int bad = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (discover() != 0)
        return 2;
    printf("xsave: %zu bytes; compared:", xsave_size);
    for (int r = 0; r < nregions; r++)
        printf(" %s", regions[r].name);
    printf("\n");
    if (argc == 3 && !strcmp(argv[1], "ptrace")) {
        size_t len = strtoul(argv[2], NULL, 10);
        bad |= ptrace_case("roundtrip", len);
        bad |= ptrace_case("modify", len);
        bad |= ptrace_case("two-tasks", len);
        return bad;
    }
    if (argc == 4 && !strcmp(argv[1], "stress"))
        return stress(atof(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: xstate_check ptrace LEN | stress SECONDS PROCS\n");
    return 2;
}
