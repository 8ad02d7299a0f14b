//! Event channels, 2-level ABI (XEN-PV-ABI §5).
//!
//! Each domain has a table of ports (port 0 is never allocated; the lowest
//! free port ≥ 1 is handed out). Delivery follows Xen's 2-level algorithm on
//! the target domain's `shared_info` page in machine memory, with atomic
//! operations only — the guest writes the same words concurrently:
//!
//! 1. test-and-set `evtchn_pending[port]`; if it was set, stop (no new edge);
//! 2. if `evtchn_mask[port]` is clear and test-and-set of selector bit
//!    `port / 64` in the notify vCPU's `evtchn_pending_sel` found it clear,
//!    set `evtchn_upcall_pending`; if that was 0, kick the vCPU;
//! 3. wake any vCPU polling on the port, whatever the mask.
//!
//! All domains' tables live in one [`EvtchnSystem`] behind the caller's lock,
//! so interdomain binding and sending are single atomic steps.

use std::collections::BTreeMap;

use guest_abi::abi::Errno;
use guest_abi::abi::evtchn as abi;
use hv_cpu::mem::{MachineAddr, MachineMemory, Mfn};

use crate::machine::DomId;

pub use guest_abi::abi::DOMID_SELF;
/// Ports a domain may allocate by default (Xen's default for a domU).
pub const DEFAULT_MAX_PORTS: u32 = 1023;
/// Number of VIRQs (`NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;

/// Why an event-channel operation failed; [`EvtchnError::errno`] is what the
/// guest sees.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvtchnError {
    /// Bad port, bad state for the operation, or bad argument.
    #[error("invalid event channel argument: {0}")]
    Invalid(&'static str),
    /// The domain does not exist.
    #[error("no such domain {0}")]
    NoDomain(DomId),
    /// Acting on another domain without privilege.
    #[error("operation on domain {0} not permitted")]
    NotPermitted(DomId),
    /// The vCPU does not exist.
    #[error("no such vCPU {0}")]
    NoVcpu(u32),
    /// The VIRQ is already bound on that vCPU.
    #[error("VIRQ {0} already bound")]
    Exists(u32),
    /// No free port below the domain's limit.
    #[error("out of event-channel ports")]
    NoSpace,
}

impl EvtchnError {
    /// The Xen errno a guest sees for this failure.
    #[must_use]
    pub fn errno(&self) -> Errno {
        match self {
            Self::Invalid(_) => Errno::EINVAL,
            Self::NoDomain(_) => Errno::ESRCH,
            Self::NotPermitted(_) => Errno::EPERM,
            Self::NoVcpu(_) => Errno::ENOENT,
            Self::Exists(_) => Errno::EEXIST,
            Self::NoSpace => Errno::ENOSPC,
        }
    }
}

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Not allocated.
    Free,
    /// Waiting for `remote` to bind to it.
    Unbound {
        /// Domain allowed to bind.
        remote: DomId,
    },
    /// Connected to a port of another (or the same) domain.
    Interdomain {
        /// Peer domain.
        remote: DomId,
        /// Peer port.
        remote_port: u32,
    },
    /// Bound to a VIRQ.
    Virq(u32),
    /// Inter-processor interrupt within the domain.
    Ipi,
}

#[derive(Clone, Copy, Debug)]
struct Port {
    state: PortState,
    notify_vcpu: u32,
}

/// A vCPU that must be woken: a new upcall is pending or a polled port fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kick {
    /// Domain.
    pub dom: DomId,
    /// vCPU.
    pub vcpu: u32,
}

/// Up to two vCPUs to wake after a delivery (the notified vCPU and a poller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kicks([Option<Kick>; 2]);

impl Kicks {
    fn one(k: Option<Kick>) -> Self {
        Self([k, None])
    }

    /// The vCPUs to wake.
    pub fn iter(&self) -> impl Iterator<Item = Kick> + '_ {
        self.0.iter().flatten().copied()
    }

    /// Whether nobody needs waking.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// One domain's event-channel state.
#[derive(Debug)]
pub struct DomainEvtchn {
    ports: Vec<Port>,
    max_ports: u32,
    shared_info: Mfn,
    /// Machine address of each vCPU's `vcpu_info`.
    vcpu_info: Vec<MachineAddr>,
    /// `virq_port[vcpu][virq]`, 0 = unbound.
    virq_port: Vec<[u32; NR_VIRQS as usize]>,
}

impl DomainEvtchn {
    /// State for a domain with `vcpus` vCPUs whose `shared_info` is at `shared_info`.
    #[must_use]
    pub fn new(shared_info: Mfn, vcpus: u32) -> Self {
        Self {
            ports: vec![
                Port {
                    state: PortState::Free,
                    notify_vcpu: 0
                };
                1
            ],
            max_ports: DEFAULT_MAX_PORTS,
            shared_info,
            vcpu_info: (0..u64::from(vcpus))
                .map(|v| MachineAddr(shared_info.addr().0 + v * 64))
                .collect(),
            virq_port: vec![[0; NR_VIRQS as usize]; vcpus as usize],
        }
    }

    /// Move a vCPU's `vcpu_info` (VCPUOP_register_vcpu_info).
    pub fn set_vcpu_info(&mut self, vcpu: u32, at: MachineAddr) {
        if let Some(slot) = self.vcpu_info.get_mut(vcpu as usize) {
            *slot = at;
        }
    }

    /// Machine address of `vcpu`'s `vcpu_info`.
    #[must_use]
    pub fn vcpu_info(&self, vcpu: u32) -> Option<MachineAddr> {
        self.vcpu_info.get(vcpu as usize).copied()
    }

    fn vcpus(&self) -> u32 {
        u32::try_from(self.vcpu_info.len()).unwrap_or(0)
    }

    /// State of `port`, if it exists.
    #[must_use]
    pub fn state(&self, port: u32) -> Option<PortState> {
        self.ports.get(port as usize).map(|p| p.state)
    }

    fn port(&self, port: u32) -> Result<Port, EvtchnError> {
        if port == 0 {
            return Err(EvtchnError::Invalid("port 0"));
        }
        self.ports
            .get(port as usize)
            .copied()
            .ok_or(EvtchnError::Invalid("no such port"))
    }

    fn set(&mut self, port: u32, p: Port) {
        if let Some(slot) = self.ports.get_mut(port as usize) {
            *slot = p;
        }
    }

    fn alloc(&mut self, state: PortState, notify_vcpu: u32) -> Result<u32, EvtchnError> {
        let free = self
            .ports
            .iter()
            .skip(1)
            .position(|p| p.state == PortState::Free)
            .map(|i| i + 1);
        let idx = match free {
            Some(i) => i,
            None => {
                if self.ports.len() > self.max_ports as usize {
                    return Err(EvtchnError::NoSpace);
                }
                self.ports.push(Port {
                    state: PortState::Free,
                    notify_vcpu: 0,
                });
                self.ports.len() - 1
            }
        };
        let port = u32::try_from(idx).map_err(|_| EvtchnError::NoSpace)?;
        self.set(port, Port { state, notify_vcpu });
        Ok(port)
    }

    fn word_addr(&self, base: u64, port: u32) -> MachineAddr {
        MachineAddr(self.shared_info.addr().0 + base + u64::from(port / 64) * 8)
    }
}

/// Offsets of the 2-level bitmaps in `shared_info`.
const PENDING_OFF: u64 = 2048;
const MASK_OFF: u64 = 2560;

/// Event channels of every domain.
#[derive(Debug, Default)]
pub struct EvtchnSystem {
    domains: BTreeMap<DomId, DomainEvtchn>,
    /// `(dom, vcpu) → ports` of vCPUs blocked in `SCHEDOP_poll`.
    pollers: BTreeMap<(DomId, u32), Vec<u32>>,
}

/// Result of `EVTCHNOP_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// vCPU notified.
    pub vcpu: u32,
    /// Union word 1 (remote dom / virq).
    pub a: u32,
    /// Union word 2 (remote port).
    pub b: u32,
}

impl EvtchnSystem {
    /// Register a domain.
    pub fn add_domain(&mut self, dom: DomId, state: DomainEvtchn) {
        self.domains.insert(dom, state);
    }

    /// Remove a domain, closing its ports (peers revert to unbound).
    pub fn remove_domain(&mut self, mem: &MachineMemory, dom: DomId) {
        let _ = self.reset(mem, dom);
        self.domains.remove(&dom);
        self.pollers.retain(|(d, _), _| *d != dom);
    }

    /// A domain's table.
    #[must_use]
    pub fn domain(&self, dom: DomId) -> Option<&DomainEvtchn> {
        self.domains.get(&dom)
    }

    /// A domain's table, mutably.
    pub fn domain_mut(&mut self, dom: DomId) -> Option<&mut DomainEvtchn> {
        self.domains.get_mut(&dom)
    }

    fn dom(&mut self, dom: DomId) -> Result<&mut DomainEvtchn, EvtchnError> {
        self.domains.get_mut(&dom).ok_or(EvtchnError::NoDomain(dom))
    }

    /// `EVTCHNOP_alloc_unbound` by `caller` for `dom` (must be the caller),
    /// to be bound by `remote` (`DOMID_SELF` = the caller).
    ///
    /// # Errors
    /// EPERM for another domain, ENOSPC when out of ports.
    pub fn alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote: DomId,
    ) -> Result<u32, EvtchnError> {
        let dom = dom.resolve(caller);
        if dom != caller {
            return Err(EvtchnError::NotPermitted(dom));
        }
        let remote = remote.resolve(caller);
        self.dom(dom)?.alloc(PortState::Unbound { remote }, 0)
    }

    /// `EVTCHNOP_bind_interdomain`: connect a new local port of `caller` to
    /// `remote_port` of `remote` (which must be unbound and waiting for
    /// `caller`). The new local port is set pending, as in Xen.
    ///
    /// # Errors
    /// ESRCH for an unknown domain, EINVAL for a port not waiting for us.
    pub fn bind_interdomain(
        &mut self,
        mem: &MachineMemory,
        caller: DomId,
        remote: DomId,
        remote_port: u32,
    ) -> Result<(u32, Kicks), EvtchnError> {
        let remote = remote.resolve(caller);
        self.dom(caller)?;
        let rp = self.dom(remote)?.port(remote_port)?;
        if rp.state != (PortState::Unbound { remote: caller }) {
            return Err(EvtchnError::Invalid(
                "remote port is not unbound for this domain",
            ));
        }
        let local = self.dom(caller)?.alloc(
            PortState::Interdomain {
                remote,
                remote_port,
            },
            0,
        )?;
        self.dom(remote)?.set(
            remote_port,
            Port {
                state: PortState::Interdomain {
                    remote: caller,
                    remote_port: local,
                },
                notify_vcpu: rp.notify_vcpu,
            },
        );
        let kick = self.raise(mem, caller, local);
        Ok((local, kick))
    }

    /// `EVTCHNOP_bind_virq`.
    ///
    /// # Errors
    /// EINVAL (bad VIRQ, global VIRQ off vCPU 0), ENOENT (vCPU), EEXIST.
    pub fn bind_virq(&mut self, caller: DomId, virq: u32, vcpu: u32) -> Result<u32, EvtchnError> {
        if virq >= NR_VIRQS {
            return Err(EvtchnError::Invalid("VIRQ out of range"));
        }
        let per_vcpu = matches!(
            virq,
            abi::VIRQ_TIMER | abi::VIRQ_DEBUG | abi::VIRQ_XENOPROF | abi::VIRQ_XENPMU
        );
        if !per_vcpu && vcpu != 0 {
            return Err(EvtchnError::Invalid("global VIRQs bind on vCPU 0"));
        }
        let d = self.dom(caller)?;
        if vcpu >= d.vcpus() {
            return Err(EvtchnError::NoVcpu(vcpu));
        }
        let bound = d
            .virq_port
            .get(vcpu as usize)
            .and_then(|t| t.get(virq as usize))
            .copied()
            .unwrap_or(0);
        if bound != 0 {
            return Err(EvtchnError::Exists(virq));
        }
        let port = d.alloc(PortState::Virq(virq), vcpu)?;
        if let Some(slot) = d
            .virq_port
            .get_mut(vcpu as usize)
            .and_then(|t| t.get_mut(virq as usize))
        {
            *slot = port;
        }
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`.
    ///
    /// # Errors
    /// ENOENT for a bad vCPU, ENOSPC when out of ports.
    pub fn bind_ipi(&mut self, caller: DomId, vcpu: u32) -> Result<u32, EvtchnError> {
        let d = self.dom(caller)?;
        if vcpu >= d.vcpus() {
            return Err(EvtchnError::NoVcpu(vcpu));
        }
        d.alloc(PortState::Ipi, vcpu)
    }

    /// `EVTCHNOP_close`.
    ///
    /// # Errors
    /// EINVAL for a free or bad port.
    pub fn close(
        &mut self,
        mem: &MachineMemory,
        caller: DomId,
        port: u32,
    ) -> Result<(), EvtchnError> {
        let p = self.dom(caller)?.port(port)?;
        match p.state {
            PortState::Free => return Err(EvtchnError::Invalid("port is not bound")),
            PortState::Virq(virq) => {
                let d = self.dom(caller)?;
                if let Some(slot) = d
                    .virq_port
                    .get_mut(p.notify_vcpu as usize)
                    .and_then(|t| t.get_mut(virq as usize))
                {
                    *slot = 0;
                }
            }
            PortState::Interdomain {
                remote,
                remote_port,
            } => {
                if let Some(rd) = self.domains.get_mut(&remote)
                    && let Ok(rp) = rd.port(remote_port)
                {
                    rd.set(
                        remote_port,
                        Port {
                            state: PortState::Unbound { remote: caller },
                            notify_vcpu: rp.notify_vcpu,
                        },
                    );
                }
            }
            PortState::Unbound { .. } | PortState::Ipi => {}
        }
        let d = self.dom(caller)?;
        d.set(
            port,
            Port {
                state: PortState::Free,
                notify_vcpu: 0,
            },
        );
        // A freed port leaves nothing pending behind.
        let bit = !(1u64 << (port % 64));
        let _ = mem.fetch_and_u64(d.word_addr(PENDING_OFF, port), bit);
        Ok(())
    }

    /// `EVTCHNOP_send`.
    ///
    /// # Errors
    /// EINVAL for ports that cannot send (free, VIRQ).
    pub fn send(
        &mut self,
        mem: &MachineMemory,
        caller: DomId,
        port: u32,
    ) -> Result<Kicks, EvtchnError> {
        let p = self.dom(caller)?.port(port)?;
        match p.state {
            PortState::Interdomain {
                remote,
                remote_port,
            } => Ok(self.raise(mem, remote, remote_port)),
            PortState::Ipi => Ok(self.raise(mem, caller, port)),
            PortState::Unbound { .. } => Ok(Kicks::default()),
            PortState::Free | PortState::Virq(_) => Err(EvtchnError::Invalid("port cannot send")),
        }
    }

    /// Raise a VIRQ on a vCPU (global VIRQs use vCPU 0's binding).
    pub fn raise_virq(&mut self, mem: &MachineMemory, dom: DomId, vcpu: u32, virq: u32) -> Kicks {
        let port = self
            .domains
            .get(&dom)
            .and_then(|d| d.virq_port.get(vcpu as usize))
            .and_then(|t| t.get(virq as usize))
            .copied()
            .unwrap_or(0);
        if port == 0 {
            return Kicks::default();
        }
        self.raise(mem, dom, port)
    }

    /// Set `port` of `dom` pending and deliver per the 2-level algorithm.
    pub fn raise(&mut self, mem: &MachineMemory, dom: DomId, port: u32) -> Kicks {
        let mut kicks = Kicks::one(self.deliver(mem, dom, port));
        // Pollers wake whatever the mask says.
        let polled = self
            .pollers
            .iter()
            .find(|((pd, _), ports)| *pd == dom && ports.contains(&port))
            .map(|(k, _)| *k);
        if let Some((pd, pv)) = polled {
            self.pollers.remove(&(pd, pv));
            kicks.0[1] = Some(Kick { dom: pd, vcpu: pv });
        }
        kicks
    }

    fn deliver(&self, mem: &MachineMemory, dom: DomId, port: u32) -> Option<Kick> {
        let d = self.domains.get(&dom)?;
        let p = d.ports.get(port as usize)?;
        let bit = 1u64 << (port % 64);
        let was = mem.fetch_or_u64(d.word_addr(PENDING_OFF, port), bit).ok()?;
        if was & bit != 0 {
            return None;
        }
        let masked = mem.read_u64(d.word_addr(MASK_OFF, port)).ok()? & bit != 0;
        if masked {
            None
        } else {
            Self::mark_pending(mem, d, dom, p.notify_vcpu, port)
        }
    }

    fn mark_pending(
        mem: &MachineMemory,
        d: &DomainEvtchn,
        dom: DomId,
        vcpu: u32,
        port: u32,
    ) -> Option<Kick> {
        let vi = d.vcpu_info(vcpu)?;
        let sel_bit = 1u64 << (port / 64);
        let sel_was = mem.fetch_or_u64(MachineAddr(vi.0 + 8), sel_bit).ok()?;
        if sel_was & sel_bit != 0 {
            return None;
        }
        let pending_was = mem.swap_u8(vi, 1).ok()?;
        (pending_was == 0).then_some(Kick { dom, vcpu })
    }

    /// `EVTCHNOP_unmask`.
    ///
    /// # Errors
    /// EINVAL for a bad port.
    pub fn unmask(
        &mut self,
        mem: &MachineMemory,
        caller: DomId,
        port: u32,
    ) -> Result<Option<Kick>, EvtchnError> {
        let d = self.dom(caller)?;
        let p = d.port(port)?;
        let bit = 1u64 << (port % 64);
        let Ok(was) = mem.fetch_and_u64(d.word_addr(MASK_OFF, port), !bit) else {
            return Ok(None);
        };
        if was & bit == 0 {
            return Ok(None);
        }
        let pending = mem.read_u64(d.word_addr(PENDING_OFF, port)).unwrap_or(0) & bit != 0;
        let d = self
            .domains
            .get(&caller)
            .ok_or(EvtchnError::NoDomain(caller))?;
        Ok(if pending {
            Self::mark_pending(mem, d, caller, p.notify_vcpu, port)
        } else {
            None
        })
    }

    /// `EVTCHNOP_status` of `dom`'s `port` (only the caller's own ports).
    ///
    /// # Errors
    /// EPERM for another domain, EINVAL for a bad port.
    pub fn status(
        &mut self,
        caller: DomId,
        dom: DomId,
        port: u32,
    ) -> Result<PortStatus, EvtchnError> {
        let dom = dom.resolve(caller);
        if dom != caller {
            return Err(EvtchnError::NotPermitted(dom));
        }
        let p = self.dom(dom)?.port(port)?;
        let (status, a, b) = match p.state {
            PortState::Free => (abi::EVTCHNSTAT_CLOSED, 0, 0),
            PortState::Unbound { remote } => (abi::EVTCHNSTAT_UNBOUND, u32::from(remote.0), 0),
            PortState::Interdomain {
                remote,
                remote_port,
            } => (
                abi::EVTCHNSTAT_INTERDOMAIN,
                u32::from(remote.0),
                remote_port,
            ),
            PortState::Virq(v) => (abi::EVTCHNSTAT_VIRQ, v, 0),
            PortState::Ipi => (abi::EVTCHNSTAT_IPI, 0, 0),
        };
        Ok(PortStatus {
            status,
            vcpu: p.notify_vcpu,
            a,
            b,
        })
    }

    /// `EVTCHNOP_bind_vcpu`.
    ///
    /// # Errors
    /// ENOENT for a bad vCPU, EINVAL for IPI and per-vCPU VIRQ ports.
    pub fn bind_vcpu(&mut self, caller: DomId, port: u32, vcpu: u32) -> Result<(), EvtchnError> {
        let d = self.dom(caller)?;
        if vcpu >= d.vcpus() {
            return Err(EvtchnError::NoVcpu(vcpu));
        }
        let mut p = d.port(port)?;
        match p.state {
            PortState::Virq(
                abi::VIRQ_TIMER | abi::VIRQ_DEBUG | abi::VIRQ_XENOPROF | abi::VIRQ_XENPMU,
            ) => {
                return Err(EvtchnError::Invalid("per-vCPU VIRQ ports cannot move"));
            }
            PortState::Virq(v) => {
                // Move the binding record with the port.
                if let Some(slot) = d
                    .virq_port
                    .get_mut(p.notify_vcpu as usize)
                    .and_then(|t| t.get_mut(v as usize))
                {
                    *slot = 0;
                }
                if let Some(slot) = d
                    .virq_port
                    .get_mut(vcpu as usize)
                    .and_then(|t| t.get_mut(v as usize))
                {
                    *slot = port;
                }
            }
            PortState::Unbound { .. } | PortState::Interdomain { .. } => {}
            PortState::Ipi | PortState::Free => {
                return Err(EvtchnError::Invalid("port cannot be moved"));
            }
        }
        p.notify_vcpu = vcpu;
        d.set(port, p);
        Ok(())
    }

    /// `EVTCHNOP_reset` (own domain only): close every port.
    ///
    /// # Errors
    /// EPERM for another domain.
    pub fn reset(&mut self, mem: &MachineMemory, caller: DomId) -> Result<(), EvtchnError> {
        let n = u32::try_from(self.dom(caller)?.ports.len()).unwrap_or(0);
        for port in 1..n {
            if self.dom(caller)?.state(port) != Some(PortState::Free) {
                let _ = self.close(mem, caller, port);
            }
        }
        Ok(())
    }

    /// Register `vcpu` of `dom` as polling `ports` (`SCHEDOP_poll`). Returns
    /// true if one of them is already pending (then nothing is registered).
    pub fn poll(&mut self, mem: &MachineMemory, dom: DomId, vcpu: u32, ports: &[u32]) -> bool {
        let Some(d) = self.domains.get(&dom) else {
            return false;
        };
        let pending = ports.iter().any(|&p| {
            let bit = 1u64 << (p % 64);
            p < 4096 && mem.read_u64(d.word_addr(PENDING_OFF, p)).unwrap_or(0) & bit != 0
        });
        if !pending {
            self.pollers.insert((dom, vcpu), ports.to_vec());
        }
        pending
    }

    /// Stop polling (timeout or wake-up by other means).
    pub fn stop_poll(&mut self, dom: DomId, vcpu: u32) {
        self.pollers.remove(&(dom, vcpu));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DomId = DomId(1);
    const B: DomId = DomId(2);

    fn setup() -> (MachineMemory, EvtchnSystem) {
        let mem = MachineMemory::new(4).expect("map");
        let mut ev = EvtchnSystem::default();
        ev.add_domain(A, DomainEvtchn::new(Mfn(1), 2));
        ev.add_domain(B, DomainEvtchn::new(Mfn(2), 1));
        (mem, ev)
    }

    fn pending(mem: &MachineMemory, si: u64, port: u32) -> bool {
        mem.read_u64(MachineAddr(
            si * 4096 + PENDING_OFF + u64::from(port / 64) * 8,
        ))
        .expect("r")
            & (1 << (port % 64))
            != 0
    }

    #[test]
    fn interdomain_send_raises_the_peer_with_an_upcall() {
        let (mem, mut ev) = setup();
        let a_port = ev.alloc_unbound(A, DomId(DOMID_SELF), B).expect("alloc");
        assert_eq!(a_port, 1, "lowest free port >= 1");
        let (b_port, kicks) = ev.bind_interdomain(&mem, B, A, a_port).expect("bind");
        // Binding sets the new local port pending (and kicks B's vCPU 0).
        assert!(pending(&mem, 2, b_port));
        assert_eq!(
            kicks.iter().collect::<Vec<_>>(),
            vec![Kick { dom: B, vcpu: 0 }]
        );
        let kicks = ev.send(&mem, B, b_port).expect("send");
        assert!(pending(&mem, 1, a_port));
        assert_eq!(
            kicks.iter().collect::<Vec<_>>(),
            vec![Kick { dom: A, vcpu: 0 }]
        );
        assert_eq!(
            mem.read_u8(MachineAddr(4096)).expect("r"),
            1,
            "upcall_pending"
        );
        assert_eq!(
            mem.read_u64(MachineAddr(4096 + 8)).expect("r"),
            1,
            "selector bit 0"
        );
        // A second send is not a new edge.
        assert!(ev.send(&mem, B, b_port).expect("send").is_empty());
        let st = ev.status(A, DomId(DOMID_SELF), a_port).expect("status");
        assert_eq!(
            (st.status, st.a, st.b),
            (abi::EVTCHNSTAT_INTERDOMAIN, u32::from(B.0), b_port)
        );
    }

    #[test]
    fn loopback_to_self_works() {
        let (mem, mut ev) = setup();
        let p = ev.alloc_unbound(A, A, DomId(DOMID_SELF)).expect("alloc");
        let (q, _) = ev
            .bind_interdomain(&mem, A, DomId(DOMID_SELF), p)
            .expect("bind to self");
        mem.write_u64(MachineAddr(4096 + PENDING_OFF), 0)
            .expect("clear");
        ev.send(&mem, A, q).expect("send");
        assert!(pending(&mem, 1, p));
    }

    #[test]
    fn masked_edges_wait_for_unmask() {
        let (mem, mut ev) = setup();
        let port = ev.bind_ipi(A, 1).expect("ipi");
        mem.write_u64(MachineAddr(4096 + MASK_OFF), 1 << port)
            .expect("mask");
        assert!(
            ev.send(&mem, A, port).expect("send").is_empty(),
            "masked: no upcall"
        );
        assert!(pending(&mem, 1, port));
        assert_eq!(mem.read_u8(MachineAddr(4096 + 64)).expect("r"), 0);
        let k = ev.unmask(&mem, A, port).expect("unmask");
        assert_eq!(
            k,
            Some(Kick { dom: A, vcpu: 1 }),
            "unmask re-raises on the IPI's vCPU"
        );
        assert_eq!(mem.read_u8(MachineAddr(4096 + 64)).expect("r"), 1);
    }

    #[test]
    fn closing_reverts_the_peer_and_clears_pending() {
        let (mem, mut ev) = setup();
        let a = ev.alloc_unbound(A, A, B).expect("alloc");
        let (b, _) = ev.bind_interdomain(&mem, B, A, a).expect("bind");
        ev.close(&mem, B, b).expect("close");
        assert!(!pending(&mem, 2, b));
        assert_eq!(
            ev.domain(A).expect("A").state(a),
            Some(PortState::Unbound { remote: B })
        );
        assert_eq!(
            ev.close(&mem, B, b),
            Err(EvtchnError::Invalid("port is not bound"))
        );
        // A can be bound again.
        ev.bind_interdomain(&mem, B, A, a).expect("rebind");
    }

    #[test]
    fn hostile_arguments_get_errors() {
        let (mem, mut ev) = setup();
        let a = ev.alloc_unbound(A, A, A).expect("alloc for self only");
        assert_eq!(
            ev.bind_interdomain(&mem, B, A, a).map(|_| ()),
            Err(EvtchnError::Invalid(
                "remote port is not unbound for this domain"
            ))
        );
        assert_eq!(
            ev.bind_interdomain(&mem, B, DomId(77), 1).map(|_| ()),
            Err(EvtchnError::NoDomain(DomId(77)))
        );
        assert!(ev.bind_interdomain(&mem, B, A, u32::MAX).is_err());
        assert!(ev.send(&mem, A, 0).is_err());
        assert!(ev.send(&mem, A, 999_999).is_err());
        assert_eq!(ev.alloc_unbound(A, B, A), Err(EvtchnError::NotPermitted(B)));
        assert_eq!(ev.status(A, B, 1), Err(EvtchnError::NotPermitted(B)));
        assert_eq!(
            ev.bind_virq(A, 99, 0),
            Err(EvtchnError::Invalid("VIRQ out of range"))
        );
        assert_eq!(
            ev.bind_virq(A, abi::VIRQ_DOM_EXC, 1),
            Err(EvtchnError::Invalid("global VIRQs bind on vCPU 0"))
        );
        assert_eq!(
            ev.bind_virq(A, abi::VIRQ_TIMER, 5),
            Err(EvtchnError::NoVcpu(5))
        );
        ev.bind_virq(A, abi::VIRQ_TIMER, 1)
            .expect("timer on vcpu 1");
        assert_eq!(
            ev.bind_virq(A, abi::VIRQ_TIMER, 1),
            Err(EvtchnError::Exists(0))
        );
        assert_eq!(
            ev.unmask(&mem, A, 4000),
            Err(EvtchnError::Invalid("no such port"))
        );
        // Exhaustion is bounded: ENOSPC, not unbounded growth.
        let mut n = 0;
        while ev.bind_ipi(A, 0).is_ok() {
            n += 1;
            assert!(n <= DEFAULT_MAX_PORTS, "port limit not enforced");
        }
        assert_eq!(ev.bind_ipi(A, 0), Err(EvtchnError::NoSpace));
        assert_eq!(EvtchnError::NoSpace.errno(), Errno::ENOSPC);
    }

    #[test]
    fn virqs_reach_the_bound_vcpu_and_pollers_wake() {
        let (mem, mut ev) = setup();
        let port = ev.bind_virq(A, abi::VIRQ_TIMER, 1).expect("bind");
        assert!(!ev.poll(&mem, A, 1, &[port]));
        let kicks: Vec<_> = ev.raise_virq(&mem, A, 1, abi::VIRQ_TIMER).iter().collect();
        assert!(kicks.contains(&Kick { dom: A, vcpu: 1 }));
        assert!(pending(&mem, 1, port));
        assert!(
            ev.poll(&mem, A, 1, &[port]),
            "already pending: poll returns at once"
        );
        ev.reset(&mem, A).expect("reset");
        assert_eq!(ev.domain(A).expect("A").state(port), Some(PortState::Free));
    }
}
