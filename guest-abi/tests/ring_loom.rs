//! loom models of the shared ring: one frontend thread, one backend thread,
//! with Xen's notification suppression.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p guest-abi --release --test ring_loom`
//! (`LOOM_MAX_PREEMPTIONS` defaults to 3 here).
//!
//! An event channel is modelled by [`Event`], a pending flag behind a mutex and
//! condition variable: `wait` blocks until someone `notify`s. A side that goes
//! to sleep after `final_check_*` said "nothing to do" blocks in `wait`, so a
//! lost notification shows up as a deadlock, which loom reports as a failure.
//! Payloads are sequence numbers, so a skipped or repeated entry fails an
//! assertion.
#![cfg(loom)]
#![expect(clippy::unwrap_used)]

use guest_abi::ring::{BackRing, FrontRing, OwnedRingMem};
use loom::sync::{Arc, Condvar, Mutex};

/// 72 bytes: a 64-byte header and two 4-byte slots.
type TinyRing = OwnedRingMem<18>;

/// An event channel: a pending bit the receiver sleeps on.
#[derive(Default)]
struct Event {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Event {
    fn notify(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn wait(&self) {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.cv.wait(pending).unwrap();
        }
        *pending = false;
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Requests only: the front publishes `count` requests one at a time; the
/// back consumes them and sleeps whenever its final check finds nothing.
fn requests_are_delivered_without_lost_wakeups(start: u32, count: u32) {
    model(move || {
        let mem = Arc::new(TinyRing::new());
        let req_event = Arc::new(Event::default());
        let mut front = FrontRing::<u32, u32, _>::init_at(&*mem, start).unwrap();
        assert!(count <= front.slots());

        let back_thread = {
            let mem = Arc::clone(&mem);
            let req_event = Arc::clone(&req_event);
            loom::thread::spawn(move || {
                let mut back = BackRing::<u32, u32, _>::attach(&*mem).unwrap();
                let mut expect = 0;
                while expect < count {
                    while let Some(seq) = back.take_request().unwrap() {
                        assert_eq!(seq, expect, "request skipped or repeated");
                        expect += 1;
                    }
                    if expect < count && !back.final_check_for_requests().unwrap() {
                        req_event.wait();
                    }
                }
                assert_eq!(back.take_request().unwrap(), None);
            })
        };

        for seq in 0..count {
            front.push_request(seq).unwrap();
            if front.push_requests_and_check_notify() {
                req_event.notify();
            }
        }
        back_thread.join().unwrap();
    });
}

#[test]
fn loom_requests_one_at_a_time() {
    requests_are_delivered_without_lost_wakeups(0, 2);
}

#[test]
fn loom_requests_across_index_wraparound() {
    requests_are_delivered_without_lost_wakeups(u32::MAX, 2);
}

/// Both directions on a two-slot ring with more requests than slots, so the
/// front must wait for responses to free slots: every wait (front for
/// responses, back for requests) depends on the other side's notification.
fn full_duplex(start: u32, count: u32) {
    model(move || {
        let mem = Arc::new(TinyRing::new());
        let req_event = Arc::new(Event::default());
        let rsp_event = Arc::new(Event::default());
        let mut front = FrontRing::<u32, u32, _>::init_at(&*mem, start).unwrap();

        let back_thread = {
            let mem = Arc::clone(&mem);
            let (req_event, rsp_event) = (Arc::clone(&req_event), Arc::clone(&rsp_event));
            loom::thread::spawn(move || {
                let mut back = BackRing::<u32, u32, _>::attach(&*mem).unwrap();
                let mut expect = 0;
                while expect < count {
                    while let Some(seq) = back.take_request().unwrap() {
                        assert_eq!(seq, expect, "request skipped or repeated");
                        expect += 1;
                        back.push_response(seq + 100).unwrap();
                    }
                    if back.push_responses_and_check_notify() {
                        rsp_event.notify();
                    }
                    if expect < count && !back.final_check_for_requests().unwrap() {
                        req_event.wait();
                    }
                }
            })
        };

        let (mut sent, mut received) = (0, 0);
        loop {
            // Consume responses first: they free the slots the next pushes
            // need (a front that slept with requests still unpushed would
            // wait for a response that can never come).
            while let Some(rsp) = front.take_response().unwrap() {
                assert_eq!(rsp, received + 100, "response skipped or repeated");
                received += 1;
            }
            while sent < count && front.push_request(sent).is_ok() {
                sent += 1;
            }
            if front.push_requests_and_check_notify() {
                req_event.notify();
            }
            if received == count {
                break;
            }
            if !front.final_check_for_responses().unwrap() {
                rsp_event.wait();
            }
        }
        back_thread.join().unwrap();
        assert_eq!(front.free_requests(), front.slots());
    });
}

#[test]
fn loom_full_duplex_more_requests_than_slots() {
    full_duplex(0, 3);
}

#[test]
fn loom_full_duplex_across_index_wraparound() {
    full_duplex(u32::MAX - 1, 3);
}
