/*
 * A small Xen PV64 kernel in C, built with gcc and nothing from pvsdk: it
 * proves the hypervisor's ABI against an independent implementation.
 *
 * It prints a greeting and what it learned at boot (start_info, the Xen
 * version, that .data was loaded and .bss zeroed) on the emergency console
 * (console_io CONSOLEIO_write), then shuts down with SCHEDOP_shutdown
 * (SHUTDOWN_poweroff when every check held, SHUTDOWN_crash otherwise).
 */

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define __HYPERVISOR_console_io  18
#define __HYPERVISOR_xen_version 17
#define __HYPERVISOR_sched_op    29
#define CONSOLEIO_write          0
#define XENVER_version           0
#define XENVER_extraversion      1
#define SCHEDOP_shutdown         2
#define SHUTDOWN_poweroff        0
#define SHUTDOWN_crash           3

/* struct start_info (x86-64), the fields this kernel reads. */
struct start_info {
    char magic[32];
    u64 nr_pages;
    u64 shared_info;
    u32 flags, pad0;
    u64 store_mfn;
    u32 store_evtchn, pad1;
    u64 console_mfn;
    u32 console_evtchn, pad2;
    u64 pt_base;
    u64 nr_pt_frames;
    u64 mfn_list;
    u64 mod_start;
    u64 mod_len;
    char cmd_line[1024];
};

extern u8 hypercall_page[4096];

/* Hypercall through the page: number selects the 32-byte stub; arguments
 * in rdi, rsi, rdx; rcx and r11 are clobbered by syscall (the stub saves
 * them, but say so anyway), and Xen may scribble on r10/r8. */
static long hypercall3(u32 nr, u64 a1, u64 a2, u64 a3)
{
    long ret;
    register u64 rdi __asm__("rdi") = a1;
    register u64 rsi __asm__("rsi") = a2;
    register u64 rdx __asm__("rdx") = a3;
    void *stub = hypercall_page + nr * 32;
    __asm__ volatile("call *%[stub]"
                     : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx)
                     : [stub] "r"(stub)
                     : "rcx", "r11", "r10", "r8", "memory");
    return ret;
}

/* gcc may emit calls to these even when freestanding. */
void *memset(void *d, int c, unsigned long n)
{
    u8 *p = d;
    while (n--)
        *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    u8 *p = d;
    const u8 *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

static unsigned long strlen_(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static void puts_(const char *s)
{
    hypercall3(__HYPERVISOR_console_io, CONSOLEIO_write, strlen_(s), (u64)s);
}

static void put_dec(u64 v)
{
    char buf[24];
    int i = 23;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    puts_(&buf[i]);
}

static void put_hex(u64 v)
{
    char buf[19];
    int i;
    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0; i < 16; i++)
        buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    buf[18] = 0;
    puts_(buf);
}

static __attribute__((noreturn)) void shutdown(u32 reason)
{
    for (;;) {
        u32 r = reason;
        hypercall3(__HYPERVISOR_sched_op, SCHEDOP_shutdown, (u64)&r, 0);
    }
}

/* Loaded from the image (.data) and zero-filled by the builder (.bss). */
static volatile u64 loaded = 0x0123456789abcdefUL;
static volatile u64 zeroed[512];

__attribute__((noreturn)) void c_main(struct start_info *si)
{
    int ok = 1;
    long ver;
    char extra[16];
    u64 i;

    puts_("c-kernel: hello from a gcc-built Xen PV64 kernel\n");

    puts_("c-kernel: start_info magic ");
    si->magic[31] = 0;
    puts_(si->magic);
    puts_(", ");
    put_dec(si->nr_pages);
    puts_(" pages, page tables at ");
    put_hex(si->pt_base);
    puts_("\n");
    if (si->magic[0] != 'x' || si->magic[1] != 'e' || si->magic[2] != 'n')
        ok = 0;
    /* The bootstrap page tables live in the 1:1 region above VIRT_BASE. */
    if (si->pt_base < 0xffffffff80000000UL)
        ok = 0;

    ver = hypercall3(__HYPERVISOR_xen_version, XENVER_version, 0, 0);
    extra[0] = 0;
    hypercall3(__HYPERVISOR_xen_version, XENVER_extraversion, (u64)extra, 0);
    extra[15] = 0;
    puts_("c-kernel: running on Xen ");
    put_dec((u64)ver >> 16);
    puts_(".");
    put_dec((u64)ver & 0xffff);
    puts_(extra);
    puts_("\n");
    if (ver <= 0)
        ok = 0;

    if (loaded != 0x0123456789abcdefUL)
        ok = 0;
    for (i = 0; i < 512; i++)
        if (zeroed[i] != 0)
            ok = 0;
    puts_("c-kernel: .data loaded and .bss zeroed: ");
    puts_(ok ? "yes\n" : "NO\n");

    puts_("c-kernel: command line: ");
    si->cmd_line[1023] = 0;
    puts_(si->cmd_line);
    puts_("\n");

    puts_(ok ? "c-kernel: all checks passed, powering off\n"
             : "c-kernel: a check failed, crashing\n");
    shutdown(ok ? SHUTDOWN_poweroff : SHUTDOWN_crash);
}
