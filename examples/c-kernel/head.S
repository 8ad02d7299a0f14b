/*
 * Entry, hypercall page and Xen ELF notes of the gcc-built PV64 kernel.
 *
 * The notes use the standard Xen note format (namesz 4, "Xen\0", then a
 * descriptor padded to 4 bytes) in a .note.Xen section that the linker
 * script puts in a PT_NOTE segment. No __xen_guest section, no guest-abi:
 * everything here is written from the Xen PV64 ABI alone.
 */

#define XEN_ELFNOTE_ENTRY           1
#define XEN_ELFNOTE_HYPERCALL_PAGE  2
#define XEN_ELFNOTE_VIRT_BASE       3
#define XEN_ELFNOTE_PADDR_OFFSET    4
#define XEN_ELFNOTE_XEN_VERSION     5
#define XEN_ELFNOTE_GUEST_OS        6
#define XEN_ELFNOTE_GUEST_VERSION   7
#define XEN_ELFNOTE_LOADER          8
#define XEN_ELFNOTE_FEATURES        10

/* Like Linux: the kernel is linked in the top 2 GiB, the notes say where
 * the 1:1 bootstrap mapping starts, and p_paddr is physical (PADDR_OFFSET
 * 0), so the loader puts each segment at VIRT_BASE + p_paddr. */
#define VIRT_BASE    0xffffffff80000000
#define PADDR_OFFSET 0

    .macro xen_note type:req, body:vararg
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 2f - 1f           /* descsz */
    .long \type
    .asciz "Xen"
    .balign 4
1:  \body
2:  .balign 4
    .endm

    .pushsection .note.Xen, "a", @note
    xen_note XEN_ELFNOTE_GUEST_OS, .asciz "c-kernel"
    xen_note XEN_ELFNOTE_GUEST_VERSION, .asciz "1.0"
    xen_note XEN_ELFNOTE_XEN_VERSION, .asciz "xen-3.0"
    xen_note XEN_ELFNOTE_LOADER, .asciz "generic"
    xen_note XEN_ELFNOTE_FEATURES, .asciz "pae_pgdir_above_4gb"
    xen_note XEN_ELFNOTE_ENTRY, .quad _start
    xen_note XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page
    xen_note XEN_ELFNOTE_VIRT_BASE, .quad VIRT_BASE
    xen_note XEN_ELFNOTE_PADDR_OFFSET, .quad PADDR_OFFSET
    .popsection

    .section .text.head, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    /* Xen PV64 entry: CPL 3 in guest kernel mode, rsi = start_info,
     * rsp = a boot stack, events masked. */
    cld
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi
    call c_main
1:  ud2
    jmp 1b
    .size _start, . - _start

    .section .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
    .type hypercall_page, @object
hypercall_page:
    .fill 4096, 1, 0xcc
    .size hypercall_page, 4096

    .section .bss.stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip 16384
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
