//! `event_channel_op` (32) and its compat form (16): decoding for [`crate::evtchn`].

use guest_abi::abi::{Errno, evtchn as ev};

use super::{Ret, read, write};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `event_channel_op(cmd, arg)`.
pub(super) fn evtchn_op(hv: &mut Hypervisor, dom: DomId, v: usize, cmd: u64, arg: u64) -> Ret {
    let Ok(cmd) = u32::try_from(cmd) else {
        return Ret::err(Errno::ENOSYS);
    };
    let mem = &hv.mem;
    macro_rules! rd {
        ($t:ty) => {
            match read::<$t>(hv, dom, v, arg) {
                Ok(x) => x,
                Err(f) => return f.into(),
            }
        };
    }
    macro_rules! out {
        ($x:expr) => {
            match write(hv, dom, v, arg, &$x) {
                Ok(()) => Ret::OK,
                Err(f) => f.into(),
            }
        };
    }
    let me = dom;
    match cmd {
        ev::EVTCHNOP_ALLOC_UNBOUND => {
            let mut x = rd!(ev::EvtchnAllocUnbound);
            match hv
                .evtchn
                .alloc_unbound(me, DomId(x.dom), DomId(x.remote_dom))
            {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut x = rd!(ev::EvtchnBindInterdomain);
            match hv
                .evtchn
                .bind_interdomain(mem, me, DomId(x.remote_dom), x.remote_port)
            {
                Ok((p, kicks)) => {
                    hv.apply_kicks(kicks);
                    x.local_port = p;
                    out!(x)
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_BIND_VIRQ => {
            let mut x = rd!(ev::EvtchnBindVirq);
            match hv.evtchn.bind_virq(me, x.virq, x.vcpu) {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_BIND_IPI => {
            let mut x = rd!(ev::EvtchnBindIpi);
            match hv.evtchn.bind_ipi(me, x.vcpu) {
                Ok(p) => {
                    x.port = p;
                    out!(x)
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_CLOSE => {
            let x = rd!(ev::EvtchnClose);
            Ret::Val(
                hv.evtchn
                    .close(mem, me, x.port)
                    .map_or_else(|e| e.errno().to_ret(), |()| 0),
            )
        }
        ev::EVTCHNOP_SEND => {
            let x = rd!(ev::EvtchnSend);
            match hv.evtchn.send(mem, me, x.port) {
                Ok(k) => {
                    hv.apply_kicks(k);
                    Ret::OK
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_STATUS => {
            let mut x = rd!(ev::EvtchnStatus);
            match hv.evtchn.status(me, DomId(x.dom), x.port) {
                Ok(s) => {
                    x.status = s.status;
                    x.vcpu = s.vcpu;
                    x.u = [s.a, s.b];
                    out!(x)
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_UNMASK => {
            let x = rd!(ev::EvtchnUnmask);
            match hv.evtchn.unmask(mem, me, x.port) {
                Ok(k) => {
                    if let Some(k) = k {
                        hv.apply_kicks_one(k);
                    }
                    Ret::OK
                }
                Err(e) => Ret::err(e.errno()),
            }
        }
        ev::EVTCHNOP_BIND_VCPU => {
            let x = rd!(ev::EvtchnBindVcpu);
            Ret::Val(
                hv.evtchn
                    .bind_vcpu(me, x.port, x.vcpu)
                    .map_or_else(|e| e.errno().to_ret(), |()| 0),
            )
        }
        ev::EVTCHNOP_RESET => {
            let x = rd!(ev::EvtchnReset);
            if DomId(x.dom) != DomId::SELF && DomId(x.dom) != me {
                return Ret::err(Errno::EPERM);
            }
            Ret::Val(
                hv.evtchn
                    .reset(mem, me)
                    .map_or_else(|e| e.errno().to_ret(), |()| 0),
            )
        }
        // The FIFO ABI is not offered; guests fall back to 2-level.
        ev::EVTCHNOP_INIT_CONTROL | ev::EVTCHNOP_EXPAND_ARRAY | ev::EVTCHNOP_SET_PRIORITY => {
            Ret::err(Errno::EINVAL)
        }
        ev::EVTCHNOP_BIND_PIRQ => Ret::err(Errno::EPERM),
        _ => Ret::err(Errno::ENOSYS),
    }
}

/// The compat `event_channel_op(op)` (hypercall 16): the command is the
/// first word of the 32-byte `evtchn_op` the argument points to.
pub(super) fn evtchn_op_compat(hv: &mut Hypervisor, dom: DomId, v: usize, arg: u64) -> Ret {
    match read::<[u32; 8]>(hv, dom, v, arg) {
        Ok(w) => evtchn_op(hv, dom, v, u64::from(w[0]), arg.wrapping_add(4)),
        Err(f) => f.into(),
    }
}
