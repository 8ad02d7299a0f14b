//! Property tests for `guest_abi::ring`: a front/back pair driven by random
//! operation sequences against a `VecDeque` model, with the free-running
//! indices starting near `u32::MAX`, and a backend facing random `req_prod`
//! values and page contents.
#![cfg(not(loom))]
#![expect(clippy::unwrap_used)]

use guest_abi::ring::fuzzing::back_end_ops;
use guest_abi::ring::{
    BackRing, FrontRing, OwnedRingMem, REQ_EVENT_OFFSET, REQ_PROD_OFFSET, RSP_EVENT_OFFSET,
    RingError, RingMem,
};
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Clone, Debug)]
enum Op {
    PushRequest,
    PublishRequests,
    TakeRequest,
    PushResponse,
    PublishResponses,
    TakeResponse,
    BackFinalCheck,
    FrontFinalCheck,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::PushRequest),
        2 => Just(Op::PublishRequests),
        3 => Just(Op::TakeRequest),
        3 => Just(Op::PushResponse),
        2 => Just(Op::PublishResponses),
        3 => Just(Op::TakeResponse),
        1 => Just(Op::BackFinalCheck),
        1 => Just(Op::FrontFinalCheck),
    ]
}

/// Start indices: mostly right below the 32-bit wrap, sometimes anywhere.
fn start() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => u32::MAX - 40..=u32::MAX,
        1 => any::<u32>(),
    ]
}

/// The expected contents of each stage of the pipeline.
#[derive(Default)]
struct Model {
    pushed: VecDeque<u64>,        // front: pushed, not published
    published: VecDeque<u64>,     // visible to back, not taken
    taken: VecDeque<u64>,         // back: taken, not answered
    answered: VecDeque<u64>,      // back: answered, not published
    rsp_published: VecDeque<u64>, // visible to front, not taken
    back_asleep: bool,
    front_asleep: bool,
}

impl Model {
    fn outstanding(&self) -> usize {
        self.pushed.len()
            + self.published.len()
            + self.taken.len()
            + self.answered.len()
            + self.rsp_published.len()
    }
}

fn run_model<const WORDS: usize>(start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let mem = OwnedRingMem::<WORDS>::new();
    let mut front = FrontRing::<u64, u64, _>::init_at(&mem, start).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();
    let slots = front.slots() as usize;
    let mut model = Model::default();
    let mut next = 0u64;

    for op in ops {
        match op {
            Op::PushRequest => {
                let result = front.push_request(next);
                prop_assert_eq!(result.is_ok(), model.outstanding() < slots);
                if result.is_ok() {
                    model.pushed.push_back(next);
                    next += 1;
                }
            }
            Op::PublishRequests => {
                let any_new = !model.pushed.is_empty();
                let notify = front.push_requests_and_check_notify();
                model.published.extend(model.pushed.drain(..));
                // A sleeping backend must be woken by new requests...
                if model.back_asleep && any_new {
                    prop_assert!(notify, "lost request notification");
                }
                // ... and nobody is woken for nothing.
                if !any_new {
                    prop_assert!(!notify);
                }
                if notify {
                    model.back_asleep = false;
                }
            }
            Op::TakeRequest => {
                let got = back.take_request().unwrap();
                prop_assert_eq!(got, model.published.pop_front());
                if let Some(req) = got {
                    model.taken.push_back(req);
                }
            }
            Op::PushResponse => {
                let req = model.taken.pop_front();
                let result = back.push_response(req.map_or(0, |r| r + 1_000_000));
                prop_assert_eq!(result.is_ok(), req.is_some());
                if let Some(req) = req {
                    model.answered.push_back(req + 1_000_000);
                }
            }
            Op::PublishResponses => {
                let any_new = !model.answered.is_empty();
                let notify = back.push_responses_and_check_notify();
                model.rsp_published.extend(model.answered.drain(..));
                if model.front_asleep && any_new {
                    prop_assert!(notify, "lost response notification");
                }
                if !any_new {
                    prop_assert!(!notify);
                }
                if notify {
                    model.front_asleep = false;
                }
            }
            Op::TakeResponse => {
                let got = front.take_response().unwrap();
                prop_assert_eq!(got, model.rsp_published.pop_front());
            }
            Op::BackFinalCheck => {
                let more = back.final_check_for_requests().unwrap();
                prop_assert_eq!(more, !model.published.is_empty());
                model.back_asleep = !more;
            }
            Op::FrontFinalCheck => {
                let more = front.final_check_for_responses().unwrap();
                prop_assert_eq!(more, !model.rsp_published.is_empty());
                model.front_asleep = !more;
            }
        }
        // Index bookkeeping agrees with the model across the wrap.
        prop_assert_eq!(front.free_requests() as usize, slots - model.outstanding());
        prop_assert_eq!(
            front.req_prod_pvt().wrapping_sub(start) as usize,
            usize::try_from(next).unwrap()
        );
        prop_assert_eq!(back.outstanding() as usize, model.taken.len());
        let req_event = mem.load_u32_relaxed(REQ_EVENT_OFFSET);
        let rsp_event = mem.load_u32_relaxed(RSP_EVENT_OFFSET);
        if model.back_asleep {
            prop_assert_eq!(req_event, back.req_cons().wrapping_add(1));
        }
        if model.front_asleep {
            prop_assert_eq!(rsp_event, front.rsp_cons().wrapping_add(1));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn four_slot_ring_matches_fifo_model_across_wrap(
        start in start(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        run_model::<24>(start, &ops)?;
    }

    #[test]
    fn one_slot_ring_matches_fifo_model_across_wrap(
        start in start(),
        ops in proptest::collection::vec(op(), 0..100),
    ) {
        run_model::<18>(start, &ops)?;
    }

    #[test]
    fn page_ring_matches_fifo_model_across_wrap(
        start in start(),
        ops in proptest::collection::vec(op(), 0..600),
    ) {
        run_model::<1024>(start, &ops)?;
    }

    /// For any `req_prod` the backend reports exactly the legitimate count or
    /// an overflow, and never takes more than the ring holds.
    #[test]
    fn hostile_req_prod_is_counted_or_rejected(
        start in start(),
        taken in 0u32..=4,
        answered in 0u32..=4,
        offset in prop_oneof![0u32..12, any::<u32>()],
    ) {
        let answered = answered.min(taken);
        let mem = OwnedRingMem::<24>::new();
        let mut front = FrontRing::<u64, u64, _>::init_at(&mem, start).unwrap();
        let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();
        for i in 0..taken {
            front.push_request(u64::from(i)).unwrap();
        }
        front.push_requests_and_check_notify();
        for _ in 0..taken {
            back.take_request().unwrap().unwrap();
        }
        for _ in 0..answered {
            back.push_response(0).unwrap();
        }
        // The hostile frontend now claims `req_prod = start + offset`.
        let prod = start.wrapping_add(offset);
        mem.store_u32_release(REQ_PROD_OFFSET, prod);
        let req_cons = back.req_cons();
        let limit = 4 - (taken - answered);
        let legit = offset >= taken && offset - answered <= 4;
        match back.unconsumed_requests() {
            Ok(n) => {
                prop_assert!(legit);
                prop_assert_eq!(n, prod.wrapping_sub(req_cons));
                prop_assert!(n <= limit);
                for _ in 0..n {
                    prop_assert!(back.take_request().unwrap().is_some());
                }
                prop_assert_eq!(back.take_request().unwrap(), None);
                prop_assert!(back.outstanding() <= 4);
            }
            Err(RingError::Overflow { prod: p, cons, max }) => {
                prop_assert!(!legit);
                prop_assert_eq!((p, cons, max), (prod, req_cons, limit));
                prop_assert_eq!(back.req_cons(), req_cons);
            }
        }
    }

    /// Arbitrary operation sequences with a hostile frontend never panic
    /// and never return a request from outside the ring (the fuzz body).
    #[test]
    fn back_end_survives_arbitrary_peer(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        back_end_ops(&data);
    }
}
