//! The run loop: every domain's vCPUs in turn on this thread until all
//! have shut down, with timers, console input, consoles and xenstore
//! serviced between rounds. Each backend exit goes to
//! [`crate::hypercall::handle_exit`]. This is the one module above both
//! [`crate::hv`] (the hypervisor's state) and [`crate::hypercall`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use guest_abi::abi::evtchn::VIRQ_TIMER;
use hv_cpu::{Deadline, Exit};

use crate::hv::{GuestEnv, Hypervisor, RunOutcome, RunState, RunTimeout, SLICE_INSTRUCTIONS};
use crate::machine::DomId;

impl Hypervisor {
    /// Whether the stop flag is set.
    fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Run every domain until all have shut down or the stop flag is set;
    /// either way every console is drained and flushed before returning.
    pub fn run(&mut self) -> RunOutcome {
        match self.run_until(None) {
            Ok(outcome) => outcome,
            Err(timeout) => timeout.partial,
        }
    }

    /// Run every domain until all have shut down or `limit` of wall time has
    /// passed (tests and tools that must finish in bounded time).
    ///
    /// # Errors
    /// [`RunTimeout`] when some domain is still running at the limit; it
    /// carries the outcome so far (running domains show `None`).
    pub fn run_for(&mut self, limit: Duration) -> Result<RunOutcome, RunTimeout> {
        self.run_until(Some(Instant::now() + limit))
    }

    fn run_until(&mut self, deadline: Option<Instant>) -> Result<RunOutcome, RunTimeout> {
        let mut timed_out = false;
        let mut interrupted = false;
        loop {
            if self.domains.values().all(|d| d.shutdown.is_some()) {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
                break;
            }
            if self.stop_requested() {
                interrupted = true;
                break;
            }
            self.fire_timers();
            self.feed_console_input();
            self.service_consoles();
            self.service_xenstore();
            let mut ran = false;
            let mut next = self.next_domain(None);
            while let Some(dom) = next {
                next = self.next_domain(Some(dom));
                let n = self.domains.get(&dom).map_or(0, |d| d.vcpus.len());
                for v in 0..n {
                    if self.run_vcpu(dom, v) {
                        ran = true;
                    }
                }
            }
            self.service_consoles();
            crate::gnttab::reap(self);
            self.service_xenstore();
            if !ran {
                self.idle();
            }
        }
        self.service_consoles();
        self.service_xenstore();
        self.flush_console_lines();
        if interrupted {
            tracing::info!("run stopped before every domain shut down");
        }
        let outcome = RunOutcome {
            domains: self
                .domains
                .values()
                .map(|d| (d.id, d.name.clone(), d.shutdown))
                .collect(),
            interrupted,
        };
        if timed_out {
            let running = self
                .domains
                .values()
                .filter(|d| d.shutdown.is_none())
                .map(|d| d.name.clone())
                .collect();
            return Err(RunTimeout {
                running,
                partial: outcome,
            });
        }
        Ok(outcome)
    }

    /// Nothing is runnable: sleep until the next timer (or a short while).
    fn idle(&mut self) {
        let now = self.clock.now_ns();
        let next = self
            .domains
            .values()
            .filter(|d| d.shutdown.is_none())
            .flat_map(|d| d.vcpus.iter())
            .filter(|v| v.state != RunState::Down)
            .flat_map(|v| {
                let poll = match v.state {
                    RunState::Polling { deadline } => deadline,
                    _ => None,
                };
                [v.singleshot, v.periodic.map(|p| p.1), poll]
            })
            .flatten()
            .chain(
                self.domains
                    .values()
                    .filter(|d| d.shutdown.is_none())
                    .flat_map(|d| d.watchdogs.iter().flatten().copied()),
            )
            .min();
        let wait = next
            .map_or(1_000_000, |t| t.saturating_sub(now))
            .min(10_000_000);
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait));
        }
    }

    /// Raise VIRQ_TIMER for expired timers, time out polls, and shut down
    /// domains whose watchdog expired.
    fn fire_timers(&mut self) {
        let now = self.clock.now_ns();
        let mut raise = Vec::new();
        for d in self.domains.values_mut().filter(|d| d.shutdown.is_none()) {
            if d.watchdogs.iter().flatten().any(|&t| t <= now) {
                tracing::info!(dom = d.id.0, "watchdog expired");
                let _ = writeln!(
                    self.out,
                    "(hv) domain {} ({}): watchdog expired",
                    d.id, d.name
                );
                d.shutdown = Some(guest_abi::abi::sched::SHUTDOWN_WATCHDOG);
                continue;
            }
            for v in &mut d.vcpus {
                if v.state == RunState::Down {
                    continue;
                }
                let mut fire = false;
                if v.singleshot.is_some_and(|t| t <= now) {
                    v.singleshot = None;
                    fire = true;
                }
                if let Some((period, next)) = v.periodic
                    && next <= now
                {
                    // Skip missed periods rather than firing a burst.
                    let behind = (now - next) / period + 1;
                    v.periodic = Some((period, next + behind * period));
                    fire = true;
                }
                if let RunState::Polling { deadline: Some(t) } = v.state
                    && t <= now
                {
                    v.state = RunState::Runnable;
                    self.evtchn.stop_poll(d.id, v.id);
                }
                if fire {
                    raise.push((d.id, v.id));
                }
            }
        }
        for (dom, vcpu) in raise {
            let k = self.evtchn.raise_virq(&self.mem, dom, vcpu, VIRQ_TIMER);
            self.apply_kicks(k);
        }
    }

    /// Run one vCPU for a slice. Returns whether it ran.
    fn run_vcpu(&mut self, dom: DomId, v: usize) -> bool {
        let Some(d) = self.domains.get_mut(&dom) else {
            return false;
        };
        if d.shutdown.is_some() {
            return false;
        }
        let Some(vc) = d.vcpus.get_mut(v) else {
            return false;
        };
        if vc.state == RunState::Blocked && vc.pv.upcall_deliverable(&self.mem) {
            vc.state = RunState::Runnable;
        }
        if vc.state != RunState::Runnable {
            return false;
        }
        let mut budget = SLICE_INSTRUCTIONS;
        // Virtual time is charged per slice (guest code plus the hypercalls
        // handled for it, as Xen's runstate counts), not per exit: two
        // clock reads per hypercall would cost more than the hypercall.
        let slice_start = Instant::now();
        while budget > 0 {
            // Deliver a pending event before resuming guest code.
            let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) else {
                return true;
            };
            if vc.pv.upcall_deliverable(&self.mem) {
                let r = crate::vcpu::bounce(
                    &mut vc.cpu,
                    &mut vc.pv,
                    &self.mem,
                    &self.ft,
                    crate::vcpu::Bounce::Event,
                );
                if let Err(e) = r {
                    self.crash_vcpu(dom, v, format!("cannot deliver event upcall: {e}"));
                    return true;
                }
            }
            let exit = vc.backend.run(
                &mut vc.cpu,
                &self.mem,
                &GuestEnv {
                    clock: &self.clock,
                    model: &self.cpu_model,
                },
                Deadline::Instructions(budget),
            );
            vc.slices += 1;
            // Exits other than Deadline cost a notional 1000 instructions of
            // budget so a guest that only makes hypercalls still yields.
            budget = budget.saturating_sub(if exit == Exit::Deadline { budget } else { 1000 });
            match crate::hypercall::handle_exit(self, dom, v, exit) {
                crate::hypercall::Next::Continue => {}
                crate::hypercall::Next::Stop => break,
            }
            let still = self.domains.get(&dom).is_some_and(|d| {
                d.shutdown.is_none()
                    && d.vcpus
                        .get(v)
                        .is_some_and(|x| x.state == RunState::Runnable)
            });
            if !still {
                break;
            }
        }
        let spent = u64::try_from(slice_start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if let Some(vc) = self.domains.get_mut(&dom).and_then(|d| d.vcpus.get_mut(v)) {
            vc.running_ns = vc.running_ns.saturating_add(spent);
        }
        true
    }

    /// The first domain id after `after` (the lowest with `None`). The run
    /// loop walks domains with it instead of collecting the ids into a
    /// fresh vector on every pass.
    pub(crate) fn next_domain(&self, after: Option<DomId>) -> Option<DomId> {
        use std::ops::Bound::{Excluded, Unbounded};
        match after {
            None => self.domains.keys().next().copied(),
            Some(a) => self
                .domains
                .range((Excluded(a), Unbounded))
                .next()
                .map(|(&k, _)| k),
        }
    }
}
