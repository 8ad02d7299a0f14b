//! Event channels (`event_channel_op`, hypercall 32).
//!
//! All argument structs are written by the guest (IN fields) and Xen (OUT
//! fields) within one hypercall; none lives in shared memory.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `evtchn_port_t`.
pub type EvtchnPortRaw = u32;

/// `event_channel_op` command 0: connect to a remote domain's unbound port
/// ([`EvtchnBindInterdomain`]).
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
/// `event_channel_op` command 1: bind a virtual IRQ to a new port ([`EvtchnBindVirq`]).
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
/// `event_channel_op` command 2: bind a physical IRQ to a new port ([`EvtchnBindPirq`]).
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
/// `event_channel_op` command 3: close a local port ([`EvtchnClose`]).
pub const EVTCHNOP_CLOSE: u32 = 3;
/// `event_channel_op` command 4: notify the other end of a port ([`EvtchnSend`]).
pub const EVTCHNOP_SEND: u32 = 4;
/// `event_channel_op` command 5: query what a port is bound to ([`EvtchnStatus`]).
pub const EVTCHNOP_STATUS: u32 = 5;
/// `event_channel_op` command 6: allocate a port for a remote domain to bind
/// ([`EvtchnAllocUnbound`]).
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `event_channel_op` command 7: allocate a port for inter-vCPU notifications ([`EvtchnBindIpi`]).
pub const EVTCHNOP_BIND_IPI: u32 = 7;
/// `event_channel_op` command 8: change the vCPU a port notifies ([`EvtchnBindVcpu`]).
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
/// `event_channel_op` command 9: unmask a port, redelivering it if pending ([`EvtchnUnmask`]).
pub const EVTCHNOP_UNMASK: u32 = 9;
/// `event_channel_op` command 10: close all of a domain's ports ([`EvtchnReset`]).
pub const EVTCHNOP_RESET: u32 = 10;
/// `event_channel_op` command 11: switch to the FIFO ABI and register a vCPU's control block
/// ([`EvtchnInitControl`]).
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
/// `event_channel_op` command 12: add a page to the FIFO event array ([`EvtchnExpandArray`]).
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
/// `event_channel_op` command 13: set a port's FIFO priority ([`EvtchnSetPriority`]).
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;

/// `EVTCHNSTAT_*`: port is free.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// Allocated, waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// Connected to a remote port.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// Bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// Bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// Bound to an IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `bind_pirq.flags`: the PIRQ may be shared.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// Ports in the 2-level ABI on 64-bit (64 words × 64 bits).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;
/// Ports in the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << 17;
/// FIFO event word: pending.
pub const EVTCHN_FIFO_PENDING: u32 = 1 << 31;
/// FIFO event word: masked.
pub const EVTCHN_FIFO_MASKED: u32 = 1 << 30;
/// FIFO event word: linked.
pub const EVTCHN_FIFO_LINKED: u32 = 1 << 29;
/// FIFO event word: busy.
pub const EVTCHN_FIFO_BUSY: u32 = 1 << 28;
/// FIFO event word: link field mask.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << 17) - 1;
/// FIFO priority: highest.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// FIFO priority: default.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// FIFO priority: lowest.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;

// --- VIRQs -------------------------------------------------------------------

/// Per-vCPU: periodic and single-shot timer.
pub const VIRQ_TIMER: u32 = 0;
/// Per-vCPU: request to dump debug state.
pub const VIRQ_DEBUG: u32 = 1;
/// Global: Xen emergency-console input (dom0).
pub const VIRQ_CONSOLE: u32 = 2;
/// Global: some domain changed state.
pub const VIRQ_DOM_EXC: u32 = 3;
/// Global: trace buffers.
pub const VIRQ_TBUF: u32 = 4;
/// Global: a domain paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// Per-vCPU: profiling sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// Global: Xen console ring has data.
pub const VIRQ_CON_RING: u32 = 8;
/// Global: physical CPU state change.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// Global: memory event.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// Per-domain: Argo notification.
pub const VIRQ_ARGO: u32 = 11;
/// Global: Xen heap low.
pub const VIRQ_ENOMEM: u32 = 12;
/// Per-vCPU: PMU interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// Architecture-specific VIRQ slot 0 (x86: machine check, [`VIRQ_MCA`]).
pub const VIRQ_ARCH_0: u32 = 16;
/// Architecture-specific VIRQ slot 1 (unused on x86).
pub const VIRQ_ARCH_1: u32 = 17;
/// Architecture-specific VIRQ slot 2 (unused on x86).
pub const VIRQ_ARCH_2: u32 = 18;
/// Architecture-specific VIRQ slot 3 (unused on x86).
pub const VIRQ_ARCH_3: u32 = 19;
/// Architecture-specific VIRQ slot 4 (unused on x86).
pub const VIRQ_ARCH_4: u32 = 20;
/// Architecture-specific VIRQ slot 5 (unused on x86).
pub const VIRQ_ARCH_5: u32 = 21;
/// Architecture-specific VIRQ slot 6 (unused on x86).
pub const VIRQ_ARCH_6: u32 = 22;
/// Architecture-specific VIRQ slot 7 (unused on x86).
pub const VIRQ_ARCH_7: u32 = 23;
/// x86: machine-check (`VIRQ_ARCH_0`).
pub const VIRQ_MCA: u32 = VIRQ_ARCH_0;
/// Number of VIRQs.
pub const NR_VIRQS: u32 = 24;

/// Whether a VIRQ is per-vCPU (bound once per vCPU, never moved).
#[must_use]
pub const fn virq_is_per_vcpu(virq: u32) -> bool {
    matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

zc! {
    /// `EVTCHNOP_bind_interdomain`: connect to a remote domain's unbound port.
    pub struct EvtchnBindInterdomain {
        /// IN: remote domain (may be `DOMID_SELF`).
        pub remote_dom: u16,
        /// Padding (zero).
        pub _pad: u16,
        /// IN: remote port (unbound and accepting us).
        pub remote_port: u32,
        /// OUT: new local port (set pending after the bind).
        pub local_port: u32,
    }
}
assert_layout!(
    EvtchnBindInterdomain,
    size = 12,
    remote_dom = 0,
    remote_port = 4,
    local_port = 8
);

zc! {
    /// `EVTCHNOP_bind_virq`.
    pub struct EvtchnBindVirq {
        /// IN: `VIRQ_*`.
        pub virq: u32,
        /// IN: vCPU to notify.
        pub vcpu: u32,
        /// OUT: new local port.
        pub port: u32,
    }
}
assert_layout!(EvtchnBindVirq, size = 12, virq = 0, vcpu = 4, port = 8);

zc! {
    /// `EVTCHNOP_bind_pirq` (privileged).
    pub struct EvtchnBindPirq {
        /// IN: physical IRQ.
        pub pirq: u32,
        /// IN: [`BIND_PIRQ_WILL_SHARE`].
        pub flags: u32,
        /// OUT: new local port.
        pub port: u32,
    }
}
assert_layout!(EvtchnBindPirq, size = 12, pirq = 0, flags = 4, port = 8);

zc! {
    /// `EVTCHNOP_close`.
    pub struct EvtchnClose {
        /// IN: local port to close.
        pub port: u32,
    }
}
assert_layout!(EvtchnClose, size = 4, port = 0);

zc! {
    /// `EVTCHNOP_send`.
    pub struct EvtchnSend {
        /// IN: local port to notify through.
        pub port: u32,
    }
}
assert_layout!(EvtchnSend, size = 4, port = 0);

zc! {
    /// `EVTCHNOP_status`.
    ///
    /// `u` is Xen's union, interpreted according to `status`: use the
    /// accessor methods.
    pub struct EvtchnStatus {
        /// IN: domain owning the port.
        pub dom: u16,
        /// Padding (zero).
        pub _pad: u16,
        /// IN: port to query.
        pub port: u32,
        /// OUT: `EVTCHNSTAT_*`.
        pub status: u32,
        /// OUT: vCPU notified by the port.
        pub vcpu: u32,
        /// OUT: status-specific data (see accessors).
        pub u: [u32; 2],
    }
}
assert_layout!(
    EvtchnStatus,
    size = 24,
    dom = 0,
    port = 4,
    status = 8,
    vcpu = 12,
    u = 16
);

impl EvtchnStatus {
    /// `EVTCHNSTAT_UNBOUND`: the domain allowed to bind (`u.unbound.dom`).
    #[must_use]
    pub const fn unbound_dom(&self) -> u16 {
        (self.u[0] & 0xFFFF) as u16
    }
    /// `EVTCHNSTAT_INTERDOMAIN`: remote domain (`u.interdomain.dom`).
    #[must_use]
    pub const fn interdomain_dom(&self) -> u16 {
        (self.u[0] & 0xFFFF) as u16
    }
    /// `EVTCHNSTAT_INTERDOMAIN`: remote port (`u.interdomain.port`, offset 20).
    #[must_use]
    pub const fn interdomain_port(&self) -> u32 {
        self.u[1]
    }
    /// `EVTCHNSTAT_PIRQ`: the PIRQ.
    #[must_use]
    pub const fn pirq(&self) -> u32 {
        self.u[0]
    }
    /// `EVTCHNSTAT_VIRQ`: the VIRQ.
    #[must_use]
    pub const fn virq(&self) -> u32 {
        self.u[0]
    }
}

zc! {
    /// `EVTCHNOP_alloc_unbound`: allocate a port for a remote domain to bind.
    pub struct EvtchnAllocUnbound {
        /// IN: owner of the new port (`DOMID_SELF` unless privileged).
        pub dom: u16,
        /// IN: domain allowed to bind (may be `DOMID_SELF`).
        pub remote_dom: u16,
        /// OUT: new port.
        pub port: u32,
    }
}
assert_layout!(
    EvtchnAllocUnbound,
    size = 8,
    dom = 0,
    remote_dom = 2,
    port = 4
);

zc! {
    /// `EVTCHNOP_bind_ipi`.
    pub struct EvtchnBindIpi {
        /// IN: vCPU the port is bound to forever.
        pub vcpu: u32,
        /// OUT: new port.
        pub port: u32,
    }
}
assert_layout!(EvtchnBindIpi, size = 8, vcpu = 0, port = 4);

zc! {
    /// `EVTCHNOP_bind_vcpu`: re-target notifications.
    pub struct EvtchnBindVcpu {
        /// IN: port.
        pub port: u32,
        /// IN: new target vCPU.
        pub vcpu: u32,
    }
}
assert_layout!(EvtchnBindVcpu, size = 8, port = 0, vcpu = 4);

zc! {
    /// `EVTCHNOP_unmask`.
    pub struct EvtchnUnmask {
        /// IN: port to unmask.
        pub port: u32,
    }
}
assert_layout!(EvtchnUnmask, size = 4, port = 0);

zc! {
    /// `EVTCHNOP_reset`: close every channel of a domain.
    pub struct EvtchnReset {
        /// IN: `DOMID_SELF` (or a domain a privileged caller controls).
        pub dom: u16,
    }
}
assert_layout!(EvtchnReset, size = 2, dom = 0);

zc! {
    /// `EVTCHNOP_init_control` (FIFO ABI).
    pub struct EvtchnInitControl {
        /// IN: guest frame of the control block.
        pub control_gfn: u64,
        /// IN: offset of the control block in that frame.
        pub offset: u32,
        /// IN: vCPU.
        pub vcpu: u32,
        /// OUT: bits in the link field.
        pub link_bits: u8,
        /// Padding (zero).
        pub _pad: [u8; 7],
    }
}
assert_layout!(
    EvtchnInitControl,
    size = 24,
    control_gfn = 0,
    offset = 8,
    vcpu = 12,
    link_bits = 16,
    _pad = 17
);

zc! {
    /// `EVTCHNOP_expand_array` (FIFO ABI).
    pub struct EvtchnExpandArray {
        /// IN: guest frame of the next event-array page.
        pub array_gfn: u64,
    }
}
assert_layout!(EvtchnExpandArray, size = 8, array_gfn = 0);

zc! {
    /// `EVTCHNOP_set_priority` (FIFO ABI).
    pub struct EvtchnSetPriority {
        /// IN: port.
        pub port: u32,
        /// IN: priority 0 (highest) ..= 15 (lowest).
        pub priority: u32,
    }
}
assert_layout!(EvtchnSetPriority, size = 8, port = 0, priority = 4);

zc! {
    /// `struct evtchn_op` for the legacy `event_channel_op_compat` (16):
    /// the command plus the argument struct's bytes.
    pub struct EvtchnOp {
        /// `EVTCHNOP_*`.
        pub cmd: u32,
        /// The argument struct (at most 24 bytes, 4-byte aligned).
        pub u: [u8; 24],
    }
}
assert_layout!(EvtchnOp, size = 28, cmd = 0, u = 4);

impl EvtchnOp {
    /// Builds a compat op from a command and its argument struct.
    ///
    /// Returns `None` if `arg` is larger than the 24-byte union.
    #[must_use]
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, arg: &T) -> Option<Self> {
        let bytes = arg.as_bytes();
        let mut u = [0u8; 24];
        u.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Self { cmd, u })
    }

    /// Reads the union back as `T`.
    #[must_use]
    pub fn arg<T: FromBytes + KnownLayout + Immutable>(&self) -> Option<T> {
        T::read_from_prefix(&self.u).ok().map(|(v, _)| v)
    }
}
