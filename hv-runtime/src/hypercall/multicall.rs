//! `multicall` (13): a batch of hypercalls in one trap.

use guest_abi::abi::{Errno, MulticallEntry};

use super::{BATCH, Ret, dispatch, read, write};
use crate::hv::Hypervisor;
use crate::machine::DomId;

/// `multicall(list, nr_calls)`. At most [`BATCH`] entries run per
/// invocation; then (or when an entry itself must be continued, after its
/// arguments were rewritten in the entry) the multicall continues itself
/// from the current entry, as Xen's preemptible multicalls do, so one
/// hypercall never monopolises the host CPU.
pub(super) fn multicall(hv: &mut Hypervisor, dom: DomId, v: usize, list: u64, n: u64) -> Ret {
    // nr_calls is an `unsigned int`.
    let n = n & 0xffff_ffff;
    for i in 0..n {
        let at = list.wrapping_add(i * 64);
        if i == u64::from(BATCH) {
            return Ret::Preempted([at, n - i, 0, 0, 0]);
        }
        let e: MulticallEntry = match read(hv, dom, v, at) {
            Ok(e) => e,
            Err(f) => return f.into(),
        };
        let [a0, a1, a2, a3, a4, _] = e.args;
        let r = match dispatch(hv, dom, v, e.op, [a0, a1, a2, a3, a4], true) {
            Ret::Val(x) | Ret::ValStop(x) => x,
            Ret::Done => 0,
            Ret::Preempted(args) => {
                // Store the entry's remaining work in the entry itself and
                // re-run the multicall from it.
                if write(hv, dom, v, at.wrapping_add(16), &args).is_err() {
                    return Ret::err(Errno::EFAULT);
                }
                return Ret::Preempted([at, n - i, 0, 0, 0]);
            }
            Ret::Stop => return Ret::Stop,
        };
        if write(hv, dom, v, at + 8, &r.cast_unsigned()).is_err() {
            return Ret::err(Errno::EFAULT);
        }
        if hv.domains.get(&dom).is_none_or(|d| d.shutdown.is_some()) {
            return Ret::Stop;
        }
    }
    Ret::OK
}
