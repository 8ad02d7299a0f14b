//! [`GntCtx`]: the part of the hypervisor the grant operations need — the
//! grant tables, machine memory, the frame table and M2P, and the domains
//! (for liveness, page accounting and TLB flushes) — borrowed together, so
//! `map`, `copy`, `transfer` and `access` do not take the whole
//! [`Hypervisor`].

use std::collections::BTreeMap;

use hv_cpu::FlushScope;
use hv_cpu::mem::MachineMemory;

use super::table::GnttabSystem;
use crate::hv::{Domain, Hypervisor};
use crate::machine::{DomId, FrameTable, M2p};
use crate::mm::Mm;

/// Narrow borrow of the hypervisor for grant operations.
#[derive(Debug)]
pub struct GntCtx<'a> {
    /// Every domain's grant table.
    pub gnttab: &'a mut GnttabSystem,
    /// Machine memory.
    pub mem: &'a MachineMemory,
    /// The frame table.
    pub ft: &'a mut FrameTable,
    /// The read-only M2P.
    pub m2p: &'a M2p,
    /// The domains (liveness, `tot_pages`, vCPU TLBs).
    pub domains: &'a mut BTreeMap<DomId, Domain>,
}

impl GntCtx<'_> {
    /// The page-type rules over the frames ([`Mm`]).
    pub fn mm(&mut self) -> Mm<'_> {
        Mm::over(self.ft, self.mem, self.m2p)
    }

    /// Whether `dom` is a live domain with a live grant table.
    #[must_use]
    pub fn live(&self, dom: DomId) -> bool {
        self.domains.get(&dom).is_some_and(|d| d.shutdown.is_none())
            && self.gnttab.tables.get(&dom).is_some_and(|t| !t.ended)
    }

    /// Drop cached translations on every vCPU of `dom`.
    pub fn flush_tlbs(&mut self, dom: DomId, scope: FlushScope) {
        if let Some(d) = self.domains.get_mut(&dom) {
            for vc in &mut d.vcpus {
                vc.backend.flush_tlb(scope);
            }
        }
    }
}

impl Hypervisor {
    /// The narrow borrow grant operations work on.
    pub fn gnt(&mut self) -> GntCtx<'_> {
        GntCtx {
            gnttab: &mut self.gnttab,
            mem: &self.mem,
            ft: &mut self.ft,
            m2p: &self.m2p,
            domains: &mut self.domains,
        }
    }
}
