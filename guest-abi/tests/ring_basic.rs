//! Layout, protocol and hostile-peer tests for `guest_abi::ring`.
#![cfg(not(loom))]
#![expect(clippy::unwrap_used)]

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;
use guest_abi::abi::blkif::{BlkifRequest, BlkifResponse};
use guest_abi::abi::netif::{
    NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, XenNetifCtrlRequest,
    XenNetifCtrlResponse,
};
use guest_abi::ring::{
    BackRing, FrontRing, HEADER_SIZE, LayoutError, OwnedRingMem, PAGE_SIZE, REQ_EVENT_OFFSET,
    REQ_PROD_OFFSET, RSP_EVENT_OFFSET, RSP_PROD_OFFSET, RawRingMem, RingError, RingFull,
    RingLayout, RingMem, entry_size, ring_slots, slot_count,
};

type Small = OwnedRingMem<24>; // 96 bytes: four 8-byte slots

#[test]
fn one_page_slot_counts_match_xen() {
    assert_eq!(entry_size::<BlkifRequest, BlkifResponse>(), 112);
    assert_eq!(ring_slots::<BlkifRequest, BlkifResponse>(PAGE_SIZE), 32);
    assert_eq!(entry_size::<NetifTxRequest, NetifTxResponse>(), 12);
    assert_eq!(
        ring_slots::<NetifTxRequest, NetifTxResponse>(PAGE_SIZE),
        256
    );
    assert_eq!(entry_size::<NetifRxRequest, NetifRxResponse>(), 8);
    assert_eq!(
        ring_slots::<NetifRxRequest, NetifRxResponse>(PAGE_SIZE),
        256
    );
    assert_eq!(
        entry_size::<XenNetifCtrlRequest, XenNetifCtrlResponse>(),
        16
    );
    assert_eq!(
        ring_slots::<XenNetifCtrlRequest, XenNetifCtrlResponse>(PAGE_SIZE),
        128
    );
}

#[test]
fn multi_page_rings_scale_by_page_order() {
    // blkif ring-page-order 1, 2, 4: (4096 << order - 64) / 112 rounded down.
    assert_eq!(
        ring_slots::<BlkifRequest, BlkifResponse>(PAGE_SIZE << 1),
        64
    );
    assert_eq!(
        ring_slots::<BlkifRequest, BlkifResponse>(PAGE_SIZE << 2),
        128
    );
    assert_eq!(
        ring_slots::<BlkifRequest, BlkifResponse>(PAGE_SIZE << 4),
        512
    );
    let two_pages = OwnedRingMem::<2048>::new();
    let front = FrontRing::<BlkifRequest, BlkifResponse, _>::init(&two_pages).unwrap();
    assert_eq!(front.slots(), 64);
}

#[test]
fn entry_size_is_the_c_union_size() {
    // 12 bytes of u32s and an 8-byte u64: the union is 16 bytes (align 8).
    assert_eq!(entry_size::<[u32; 3], u64>(), 16);
    assert_eq!(entry_size::<u64, [u32; 3]>(), 16);
    assert_eq!(entry_size::<[u8; 7], [u8; 3]>(), 7);
    assert_eq!(slot_count(64 + 7 * 9, 7), 8);
}

#[test]
fn too_small_memory_is_rejected() {
    let mem = OwnedRingMem::<17>::new(); // 68 bytes
    assert_eq!(
        FrontRing::<u64, u64, _>::init(&mem).unwrap_err(),
        LayoutError::TooSmall {
            ring_bytes: 68,
            entry_size: 8
        }
    );
    assert!(BackRing::<u32, u32, _>::attach(&mem).is_ok()); // one 4-byte slot
}

#[test]
fn init_writes_the_xen_header() {
    let mem = OwnedRingMem::<1024>::new();
    for offset in (0..HEADER_SIZE).step_by(4) {
        mem.store_u32_relaxed(offset, 0xdead_beef);
    }
    let _front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    assert_eq!(mem.load_u32_relaxed(REQ_PROD_OFFSET), 0);
    assert_eq!(mem.load_u32_relaxed(REQ_EVENT_OFFSET), 1);
    assert_eq!(mem.load_u32_relaxed(RSP_PROD_OFFSET), 0);
    assert_eq!(mem.load_u32_relaxed(RSP_EVENT_OFFSET), 1);
    for offset in (16..HEADER_SIZE).step_by(4) {
        assert_eq!(mem.load_u32_relaxed(offset), 0, "pvt/pad at {offset}");
    }
}

#[test]
fn entries_sit_at_64_plus_masked_index_times_size() {
    let layout = RingLayout::new::<[u32; 3], u32>(PAGE_SIZE).unwrap();
    assert_eq!(layout.slots(), 256);
    assert_eq!(layout.entry_offset(0), 64);
    assert_eq!(layout.entry_offset(1), 76);
    assert_eq!(layout.entry_offset(256), 64);
    assert_eq!(layout.entry_offset(u32::MAX), 64 + 255 * 12);

    let mem = OwnedRingMem::<1024>::new();
    let mut front = FrontRing::<[u32; 3], u32, _>::init(&mem).unwrap();
    front.push_request([1, 2, 3]).unwrap();
    front.push_request([4, 5, 6]).unwrap();
    front.push_requests_and_check_notify();
    let mut bytes = [0u8; 24];
    mem.read_bytes(64, &mut bytes);
    let words: Vec<u32> = bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, [1, 2, 3, 4, 5, 6]);
    let mut prod = [0u8; 4];
    mem.read_bytes(0, &mut prod);
    assert_eq!(u32::from_le_bytes(prod), 2);
}

#[test]
fn front_refuses_more_than_n_outstanding_requests() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    assert_eq!(front.slots(), 4);
    for i in 0..4 {
        assert_eq!(front.free_requests(), 4 - i);
        front.push_request(u64::from(i)).unwrap();
    }
    assert!(front.is_full());
    assert_eq!(front.push_request(9), Err(RingFull));
}

#[test]
fn back_cannot_answer_more_requests_than_it_took() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();
    assert_eq!(back.push_response(1), Err(RingFull));
    front.push_request(5).unwrap();
    front.push_requests_and_check_notify();
    assert_eq!(back.take_request().unwrap(), Some(5));
    back.push_response(50).unwrap();
    assert_eq!(back.push_response(51), Err(RingFull));
}

#[test]
fn notifications_are_suppressed_until_the_consumer_rearms() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();

    front.push_request(1).unwrap();
    assert!(front.push_requests_and_check_notify(), "req_event = 1");
    front.push_request(2).unwrap();
    assert!(!front.push_requests_and_check_notify(), "back is awake");
    assert!(!front.push_requests_and_check_notify(), "nothing new");

    assert_eq!(back.take_request().unwrap(), Some(1));
    assert_eq!(back.take_request().unwrap(), Some(2));
    assert_eq!(back.take_request().unwrap(), None);
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(mem.load_u32_relaxed(REQ_EVENT_OFFSET), 3);

    front.push_request(3).unwrap();
    assert!(front.push_requests_and_check_notify(), "back went to sleep");

    // Final check sees a request that raced with re-arming.
    assert!(back.final_check_for_requests().unwrap());
}

#[test]
fn responses_notify_symmetrically() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();
    for i in 0..3 {
        front.push_request(i).unwrap();
    }
    front.push_requests_and_check_notify();
    while let Some(req) = back.take_request().unwrap() {
        back.push_response(req + 100).unwrap();
        if req == 0 {
            assert!(back.push_responses_and_check_notify(), "rsp_event = 1");
        }
    }
    assert!(
        !back.push_responses_and_check_notify(),
        "front not re-armed"
    );
    assert_eq!(front.take_response().unwrap(), Some(100));
    assert_eq!(front.take_response().unwrap(), Some(101));
    assert_eq!(front.take_response().unwrap(), Some(102));
    assert!(!front.final_check_for_responses().unwrap());
    assert_eq!(front.free_requests(), 4);
}

#[test]
fn back_reports_req_prod_more_than_a_ring_ahead() {
    let mem = Small::new();
    let _front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();

    mem.store_u32_release(REQ_PROD_OFFSET, 4);
    assert_eq!(back.unconsumed_requests(), Ok(4));
    mem.store_u32_release(REQ_PROD_OFFSET, 5);
    assert_eq!(
        back.unconsumed_requests(),
        Err(RingError::Overflow {
            prod: 5,
            cons: 0,
            max: 4
        })
    );
    mem.store_u32_release(REQ_PROD_OFFSET, u32::MAX);
    assert!(back.unconsumed_requests().is_err());
    assert_eq!(back.req_cons(), 0);

    // Take two, answer none: the ring may hold only 4 - 2 more.
    mem.store_u32_release(REQ_PROD_OFFSET, 2);
    assert_eq!(back.unconsumed_requests(), Ok(2));
    back.take_request().unwrap().unwrap();
    back.take_request().unwrap().unwrap();
    mem.store_u32_release(REQ_PROD_OFFSET, 7);
    assert!(
        back.take_request().is_err(),
        "re-read when the cache is empty"
    );
    mem.store_u32_release(REQ_PROD_OFFSET, 4);
    assert_eq!(back.unconsumed_requests(), Ok(2));
    mem.store_u32_release(REQ_PROD_OFFSET, 5);
    assert!(back.unconsumed_requests().is_err());
    // A producer index that moved backwards is also an error.
    mem.store_u32_release(REQ_PROD_OFFSET, 1);
    assert_eq!(
        back.unconsumed_requests(),
        Err(RingError::Overflow {
            prod: 1,
            cons: 2,
            max: 2
        })
    );
    // After answering both, the full ring is available again.
    back.push_response(0).unwrap();
    back.push_response(0).unwrap();
    mem.store_u32_release(REQ_PROD_OFFSET, 6);
    assert_eq!(back.unconsumed_requests(), Ok(4));
}

#[test]
fn front_reports_rsp_prod_beyond_published_requests() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init(&mem).unwrap();
    front.push_request(1).unwrap();
    front.push_request(2).unwrap();
    mem.store_u32_release(RSP_PROD_OFFSET, 1);
    // Pushed but unpublished requests cannot have been answered.
    assert!(front.take_response().is_err());
    front.push_requests_and_check_notify();
    assert!(front.take_response().unwrap().is_some());
    mem.store_u32_release(RSP_PROD_OFFSET, 3);
    assert_eq!(
        front.take_response(),
        Err(RingError::Overflow {
            prod: 3,
            cons: 1,
            max: 1
        })
    );
    mem.store_u32_release(RSP_PROD_OFFSET, 0);
    assert!(front.final_check_for_responses().is_err());
}

#[test]
fn attach_continues_from_shared_indices() {
    let mem = Small::new();
    let mut front = FrontRing::<u64, u64, _>::init_at(&mem, u32::MAX - 1).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(&mem).unwrap();
    for i in 0..4 {
        front.push_request(i).unwrap();
    }
    front.push_requests_and_check_notify();
    for i in 0..4 {
        let req = back.take_request().unwrap().unwrap();
        assert_eq!(req, i);
        back.push_response(req).unwrap();
    }
    back.push_responses_and_check_notify();
    assert_eq!(back.req_cons(), 2);
    let mut again = FrontRing::<u64, u64, _>::attach(&mem).unwrap();
    assert_eq!(again.req_prod_pvt(), 2);
    assert_eq!(again.rsp_cons(), 2);
    assert_eq!(again.take_response().unwrap(), None);
}

/// Run `count` requests through a ring between two threads; the back answers
/// each with `!seq`. Both sides sleep by spinning on `final_check_*`.
fn two_thread_round_trip<M: RingMem + Sync>(mem: &M, count: u64) {
    let mut front = FrontRing::<u64, u64, _>::init(mem).unwrap();
    let mut back = BackRing::<u64, u64, _>::attach(mem).unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut expect = 0;
            while expect < count {
                while let Some(req) = back.take_request().unwrap() {
                    assert_eq!(req, expect);
                    expect += 1;
                    back.push_response(!req).unwrap();
                }
                back.push_responses_and_check_notify();
                if !back.final_check_for_requests().unwrap() {
                    std::thread::yield_now();
                }
            }
        });
        let (mut sent, mut received) = (0, 0);
        while received < count {
            while sent < count && front.push_request(sent).is_ok() {
                sent += 1;
            }
            front.push_requests_and_check_notify();
            while let Some(rsp) = front.take_response().unwrap() {
                assert_eq!(rsp, !received);
                received += 1;
            }
            if !front.final_check_for_responses().unwrap() {
                std::thread::yield_now();
            }
        }
    });
}

#[test]
fn owned_memory_round_trips_between_threads() {
    two_thread_round_trip(&OwnedRingMem::<24>::new(), 20_000);
    two_thread_round_trip(&OwnedRingMem::<1024>::new(), 50_000);
}

#[test]
fn raw_memory_round_trips_between_threads() {
    let page: Box<[AtomicU64]> = (0..512).map(|_| AtomicU64::new(0)).collect();
    let base = NonNull::new(page.as_ptr().cast_mut().cast::<u8>()).unwrap();
    // SAFETY: `page` is 4096 bytes, 8-aligned, outlives `mem` (declared
    // first, so dropped after `mem`), and is accessed
    // only through `mem` (no other reference is used while `mem` lives).
    let mem = unsafe { RawRingMem::new(base, 4096) };
    two_thread_round_trip(&mem, 50_000);
}

#[test]
fn raw_and_owned_memory_agree_on_bytes() {
    let mem = OwnedRingMem::<32>::new();
    let mut front = FrontRing::<[u8; 7], [u8; 3], _>::init(&mem).unwrap();
    for i in 0..8u8 {
        front.push_request([i; 7]).unwrap();
    }
    front.push_requests_and_check_notify();
    let mut all = [0u8; 128];
    mem.read_bytes(0, &mut all);
    assert_eq!(&all[..4], &8u32.to_ne_bytes());
    for i in 0..8u8 {
        let at = 64 + 7 * usize::from(i);
        assert_eq!(&all[at..at + 7], &[i; 7]);
    }
    // Partial-word responses do not disturb neighbouring bytes.
    let mut back = BackRing::<[u8; 7], [u8; 3], _>::attach(&mem).unwrap();
    back.take_request().unwrap();
    back.take_request().unwrap();
    back.push_response([0xAA; 3]).unwrap();
    back.push_response([0xBB; 3]).unwrap();
    mem.read_bytes(0, &mut all);
    assert_eq!(&all[64..71], &[0xAA, 0xAA, 0xAA, 0, 0, 0, 0]);
    assert_eq!(&all[71..78], &[0xBB, 0xBB, 0xBB, 1, 1, 1, 1]);
    assert_eq!(&all[78..85], &[2; 7]);

    // The same bytes through a raw view of a copy.
    let copy: Box<[AtomicU64]> = all
        .chunks(8)
        .map(|c| AtomicU64::new(u64::from_ne_bytes(c.try_into().unwrap())))
        .collect();
    let base = NonNull::new(copy.as_ptr().cast_mut().cast::<u8>()).unwrap();
    // SAFETY: `copy` is 128 bytes, 8-aligned, outlives `raw`, and is only
    // accessed through `raw` while it lives.
    let raw = unsafe { RawRingMem::new(base, 128) };
    let mut again = [0u8; 128];
    raw.read_bytes(0, &mut again);
    assert_eq!(again, all);
    let mut odd = [0u8; 5];
    raw.read_bytes(3, &mut odd);
    assert_eq!(odd, all[3..8]);
}

#[test]
#[should_panic(expected = "out of bounds")]
fn owned_memory_panics_on_out_of_bounds_copy() {
    let mem = OwnedRingMem::<24>::new();
    let mut buf = [0u8; 8];
    mem.read_bytes(90, &mut buf);
}
