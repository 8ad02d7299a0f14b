//! Fuzz bodies for the ring, shared by `fuzz/fuzz_targets/ring_*.rs` and the
//! corpus-replay test `tests/ring_fuzz_corpus.rs`. Not a stable API.
//!
//! The input is a sequence of operations: the back end's own calls
//! interleaved with a hostile frontend that writes arbitrary values to any
//! index or byte of the shared page. Properties checked after every step:
//!
//! * nothing panics;
//! * every request returned is a copy of bytes inside the ring's slot array
//!   (checked against the slot the consumer index names), and the consumer
//!   never gets more than `N` requests ahead of its responses;
//! * an error from the ring leaves its private indices unchanged.

use super::{BackRing, FrontRing, HEADER_SIZE, OwnedRingMem, RingEntry, RingMem};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A byte cursor over the fuzz input; yields zeros when exhausted.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.data.split_first()?;
        self.data = rest;
        Some(first)
    }

    fn u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        for b in &mut bytes {
            *b = self.byte().unwrap_or(0);
        }
        u32::from_le_bytes(bytes)
    }
}

/// An odd-sized request (exercises partial-word copies).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct OddReq([u8; 7]);

/// A response smaller than the request.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct SmallRsp([u8; 3]);

/// Drive a [`BackRing`] with a hostile frontend: see the module docs.
///
/// The first byte picks the entry types and ring size (1 to 256 slots); the
/// rest is a sequence of operations.
pub fn back_end_ops(data: &[u8]) {
    let mut input = Input { data };
    let Some(selector) = input.byte() else {
        return;
    };
    match selector % 6 {
        // 72 bytes: one 8-byte slot.
        0 => run::<u64, u32, 18>(&mut input),
        // 96 bytes: four 8-byte slots.
        1 => run::<u64, u64, 24>(&mut input),
        // 128 bytes, 7-byte entries: 9 fit, 8 slots.
        2 => run::<OddReq, SmallRsp, 32>(&mut input),
        // One page of blkif-sized entries: 32 slots.
        3 => run::<[u64; 14], [u64; 2], 1024>(&mut input),
        // One page of netif-rx-sized entries: 256 slots.
        4 => run::<u64, u64, 1024>(&mut input),
        // 100 bytes of 12-byte entries: 3 fit, 2 slots; 28 bytes unused.
        _ => run::<[u32; 3], u32, 25>(&mut input),
    }
}

fn run<Req: RingEntry, Rsp: RingEntry, const WORDS: usize>(input: &mut Input<'_>) {
    let mem = OwnedRingMem::<WORDS>::new();
    let start = input.u32();
    // The frontend only initialises the page; from then on it is hostile.
    if FrontRing::<Req, Rsp, _>::init_at(&mem, start).is_err() {
        return;
    }
    let Ok(mut back) = BackRing::<Req, Rsp, _>::attach(&mem) else {
        return;
    };
    let layout = back.layout();
    let slots = layout.slots();
    let array = HEADER_SIZE..layout.used_bytes();
    assert!(array.end <= mem.size());

    while let Some(op) = input.byte() {
        let before = (back.req_cons(), back.rsp_prod_pvt());
        match op % 8 {
            // Hostile frontend: any req_prod value.
            0 => mem.store_u32_release(super::REQ_PROD_OFFSET, input.u32()),
            // Well-behaved frontend: advance req_prod by a small amount.
            1 => {
                let prod = mem.load_u32_relaxed(super::REQ_PROD_OFFSET);
                let step = u32::from(input.byte().unwrap_or(0) % 4);
                mem.store_u32_release(super::REQ_PROD_OFFSET, prod.wrapping_add(step));
            }
            // Scribble on any aligned word of the page (indices included).
            2 => {
                let word = usize::from(input.byte().unwrap_or(0)) % (mem.size() / 4);
                mem.store_u32_relaxed(word * 4, input.u32());
            }
            3 => match back.take_request() {
                Ok(Some(req)) => {
                    let index = back.req_cons().wrapping_sub(1);
                    let offset = layout.entry_offset(index);
                    assert!(array.contains(&offset));
                    assert!(offset + size_of::<Req>() <= array.end);
                    // The copy is exactly the slot's bytes (nothing else
                    // writes the page during a step).
                    let mut slot = Req::new_zeroed();
                    mem.read_bytes(offset, slot.as_mut_bytes());
                    assert_eq!(slot.as_bytes(), req.as_bytes());
                    assert_eq!(back.req_cons(), before.0.wrapping_add(1));
                }
                Ok(None) => assert_eq!((back.req_cons(), back.rsp_prod_pvt()), before),
                Err(_) => assert_eq!((back.req_cons(), back.rsp_prod_pvt()), before),
            },
            4 => {
                let rsp = Rsp::new_zeroed();
                let expect_ok = back.outstanding() > 0;
                assert_eq!(back.push_response(rsp).is_ok(), expect_ok);
            }
            5 => {
                let _notify = back.push_responses_and_check_notify();
            }
            6 => {
                let _more = back.final_check_for_requests();
            }
            _ => {
                let _ = back.unconsumed_requests();
            }
        }
        // Invariant: never more than N requests taken and unanswered.
        assert!(back.outstanding() <= slots);
    }
}
