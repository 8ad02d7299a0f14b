//! Event-channel wrappers (`event_channel_op`, hypercall 32).

use crate::abi::evtchn::*;
use crate::abi::hypercall_nr::EVENT_CHANNEL_OP;
use crate::abi::{DomId, Errno, EvtchnPort};
use crate::hypercall::{Hypercall, arg_mut};

/// Issues `event_channel_op(cmd, arg)`.
pub fn op<H: Hypercall + ?Sized, T>(h: &H, cmd: u32, arg: &mut T) -> Result<(), Errno> {
    Errno::check(h.call(EVENT_CHANNEL_OP, [u64::from(cmd), arg_mut(arg), 0, 0, 0]))
}

/// Allocates a port that domain `remote` may bind to.
pub fn alloc_unbound<H: Hypercall + ?Sized>(h: &H, remote: DomId) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnAllocUnbound {
        dom: crate::abi::DOMID_SELF,
        remote_dom: remote.0,
        port: 0,
    };
    op(h, EVTCHNOP_ALLOC_UNBOUND, &mut a)?;
    Ok(EvtchnPort(a.port))
}

/// Connects to `remote_port` of domain `remote`; returns the local port.
pub fn bind_interdomain<H: Hypercall + ?Sized>(
    h: &H,
    remote: DomId,
    remote_port: EvtchnPort,
) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnBindInterdomain {
        remote_dom: remote.0,
        _pad: 0,
        remote_port: remote_port.0,
        local_port: 0,
    };
    op(h, EVTCHNOP_BIND_INTERDOMAIN, &mut a)?;
    Ok(EvtchnPort(a.local_port))
}

/// Binds `virq` for `vcpu`.
pub fn bind_virq<H: Hypercall + ?Sized>(h: &H, virq: u32, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnBindVirq {
        virq,
        vcpu,
        port: 0,
    };
    op(h, EVTCHNOP_BIND_VIRQ, &mut a)?;
    Ok(EvtchnPort(a.port))
}

/// Allocates an IPI port bound to `vcpu`.
pub fn bind_ipi<H: Hypercall + ?Sized>(h: &H, vcpu: u32) -> Result<EvtchnPort, Errno> {
    let mut a = EvtchnBindIpi { vcpu, port: 0 };
    op(h, EVTCHNOP_BIND_IPI, &mut a)?;
    Ok(EvtchnPort(a.port))
}

/// Closes `port`.
pub fn close<H: Hypercall + ?Sized>(h: &H, port: EvtchnPort) -> Result<(), Errno> {
    op(h, EVTCHNOP_CLOSE, &mut EvtchnClose { port: port.0 })
}

/// Notifies the other end of `port`.
pub fn send<H: Hypercall + ?Sized>(h: &H, port: EvtchnPort) -> Result<(), Errno> {
    op(h, EVTCHNOP_SEND, &mut EvtchnSend { port: port.0 })
}

/// Unmasks `port` (Xen re-raises it if pending).
pub fn unmask<H: Hypercall + ?Sized>(h: &H, port: EvtchnPort) -> Result<(), Errno> {
    op(h, EVTCHNOP_UNMASK, &mut EvtchnUnmask { port: port.0 })
}

/// Re-targets `port`'s notifications to `vcpu`.
pub fn bind_vcpu<H: Hypercall + ?Sized>(h: &H, port: EvtchnPort, vcpu: u32) -> Result<(), Errno> {
    op(
        h,
        EVTCHNOP_BIND_VCPU,
        &mut EvtchnBindVcpu { port: port.0, vcpu },
    )
}

/// Closes every channel of `dom` (normally [`DomId::SELF`]).
pub fn reset<H: Hypercall + ?Sized>(h: &H, dom: DomId) -> Result<(), Errno> {
    op(h, EVTCHNOP_RESET, &mut EvtchnReset { dom: dom.0 })
}

/// What a port is connected to (decoded [`EvtchnStatus`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortStatus {
    /// Free.
    Closed,
    /// Waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind it.
        remote: DomId,
    },
    /// Connected to `port` of `dom`.
    Interdomain {
        /// The peer domain.
        dom: DomId,
        /// The peer's port.
        port: EvtchnPort,
    },
    /// Bound to a physical IRQ.
    Pirq(u32),
    /// Bound to a VIRQ.
    Virq(u32),
    /// An IPI port.
    Ipi,
    /// A status value the reference does not list.
    Unknown(u32),
}

/// The state of `port` in domain `dom`, and the vCPU it notifies.
pub fn status<H: Hypercall + ?Sized>(
    h: &H,
    dom: DomId,
    port: EvtchnPort,
) -> Result<(PortStatus, u32), Errno> {
    let mut a = EvtchnStatus {
        dom: dom.0,
        port: port.0,
        ..Default::default()
    };
    op(h, EVTCHNOP_STATUS, &mut a)?;
    let s = match a.status {
        EVTCHNSTAT_CLOSED => PortStatus::Closed,
        EVTCHNSTAT_UNBOUND => PortStatus::Unbound {
            remote: DomId(a.unbound_dom()),
        },
        EVTCHNSTAT_INTERDOMAIN => PortStatus::Interdomain {
            dom: DomId(a.interdomain_dom()),
            port: EvtchnPort(a.interdomain_port()),
        },
        EVTCHNSTAT_PIRQ => PortStatus::Pirq(a.pirq()),
        EVTCHNSTAT_VIRQ => PortStatus::Virq(a.virq()),
        EVTCHNSTAT_IPI => PortStatus::Ipi,
        other => PortStatus::Unknown(other),
    };
    Ok((s, a.vcpu))
}
