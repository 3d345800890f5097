//! The ring against a model (proptest), its edge cases (exact capacity, wrap-around of the
//! slots and of the indices, drops), and stress from several threads per side.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::thread;

use proptest::prelude::*;

const SYNC_MODES: [(SyncMode, SyncMode); 4] = [
    (SyncMode::Single, SyncMode::Single),
    (SyncMode::Single, SyncMode::Multi),
    (SyncMode::Multi, SyncMode::Single),
    (SyncMode::Multi, SyncMode::Multi),
];

/// An item that counts its drops.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn full_ring_holds_exactly_capacity() {
    for (producers, consumers) in SYNC_MODES {
        for capacity in [1, 2, 3, 7, 8, 9, 255, 256, 1000, 1024] {
            let (mut tx, mut rx) = ring::<usize>(capacity, producers, consumers).unwrap();
            assert_eq!(tx.capacity(), capacity);
            assert_eq!(rx.capacity(), capacity);
            for i in 0..capacity {
                assert_eq!(tx.enqueue(i), Ok(()), "capacity {capacity}: item {i}");
            }
            assert_eq!(tx.enqueue(usize::MAX), Err(usize::MAX));
            assert_eq!((tx.len(), tx.free_count(), rx.len()), (capacity, 0, capacity));
            for i in 0..capacity {
                assert_eq!(rx.dequeue(), Some(i));
            }
            assert_eq!(rx.dequeue(), None);
            assert!(tx.is_empty() && rx.is_empty());
            assert_eq!(tx.free_count(), capacity);
        }
    }
}

#[test]
fn bad_capacities_are_errors() {
    assert!(matches!(ring::<u8>(0, SyncMode::Single, SyncMode::Single), Err(RingError::ZeroCapacity)));
    assert!(matches!(
        ring::<u8>(MAX_CAPACITY + 1, SyncMode::Multi, SyncMode::Multi),
        Err(RingError::CapacityTooLarge { requested, max: MAX_CAPACITY }) if requested == MAX_CAPACITY + 1
    ));
    assert!(matches!(SharedRing::<usize>::new(0), Err(RingError::ZeroCapacity)));
    let message = RingError::ZeroCapacity.to_string();
    assert!(message.contains("at least 1"), "{message}");
}

#[test]
fn bulk_is_all_or_nothing() {
    for (producers, consumers) in SYNC_MODES {
        let (mut tx, mut rx) = ring::<u32>(8, producers, consumers).unwrap();
        let mut items = vec![1, 2, 3, 4, 5];
        assert_eq!(tx.enqueue_bulk(&mut items), 5);
        assert!(items.is_empty());

        let mut more = vec![6, 7, 8, 9];
        assert_eq!(tx.enqueue_bulk(&mut more), 0);
        assert_eq!(more, [6, 7, 8, 9]);
        let mut too_many: Vec<u32> = (0..9).collect();
        assert_eq!(tx.enqueue_bulk(&mut too_many), 0);
        assert_eq!(too_many.len(), 9);

        let mut out = vec![100];
        assert_eq!(rx.dequeue_bulk(&mut out, 6), 0);
        assert_eq!(out, [100]);
        assert_eq!(rx.dequeue_bulk(&mut out, 9), 0);
        assert_eq!(rx.dequeue_bulk(&mut out, 2), 2);
        assert_eq!(out, [100, 1, 2]);
        assert_eq!(rx.dequeue_bulk(&mut out, 3), 3);
        assert_eq!(out, [100, 1, 2, 3, 4, 5]);
        assert!(rx.is_empty());
    }
}

#[test]
fn burst_takes_what_fits_and_leaves_the_rest_in_order() {
    for (producers, consumers) in SYNC_MODES {
        let (mut tx, mut rx) = ring::<String>(5, producers, consumers).unwrap();
        let mut items: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        assert_eq!(tx.enqueue_burst(&mut items), 5);
        assert_eq!(items, ["5", "6", "7"]);
        assert_eq!(tx.enqueue_burst(&mut items), 0);
        assert_eq!(items, ["5", "6", "7"]);

        let mut out = Vec::with_capacity(16);
        assert_eq!(rx.dequeue_burst(&mut out, 2), 2);
        assert_eq!(out, ["0", "1"]);
        assert_eq!(tx.enqueue_burst(&mut items), 2);
        assert_eq!(items, ["7"]);
        assert_eq!(rx.dequeue_burst(&mut out, 100), 5);
        assert_eq!(out, ["0", "1", "2", "3", "4", "5", "6"]);
        assert_eq!(rx.dequeue_burst(&mut out, 100), 0);
        assert_eq!(tx.enqueue_burst(&mut items), 1);
        assert!(items.is_empty());
        assert_eq!(tx.enqueue_burst(&mut items), 0);
    }
}

#[test]
fn dequeue_into_a_vec_without_room_grows_it() {
    let (mut tx, mut rx) = ring::<u64>(100, SyncMode::Single, SyncMode::Single).unwrap();
    let mut items: Vec<u64> = (0..10).collect();
    assert_eq!(tx.enqueue_bulk(&mut items), 10);
    let mut out = Vec::new();
    assert_eq!(rx.dequeue_burst(&mut out, usize::MAX), 10);
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    // Burst reserves only what is there, not `max`.
    assert!(out.capacity() < 100);
    let mut out = Vec::new();
    assert_eq!(rx.dequeue_bulk(&mut out, 1), 0);
    assert_eq!(rx.dequeue_burst(&mut out, 0), 0);
}

#[test]
fn wraps_around_the_slot_array() {
    for (producers, consumers) in SYNC_MODES {
        // 5 items in 8 slots: every offset of the start is visited, and most batches split.
        let (mut tx, mut rx) = ring::<u32>(5, producers, consumers).unwrap();
        let (mut next_in, mut next_out) = (0u32, 0u32);
        let mut out = Vec::with_capacity(5);
        for round in 0..100 {
            let n = 1 + round % 5;
            let mut items: Vec<u32> = (next_in..next_in + n).collect();
            assert_eq!(tx.enqueue_bulk(&mut items), n as usize);
            next_in += n;
            out.clear();
            assert_eq!(rx.dequeue_burst(&mut out, 5), n as usize);
            assert_eq!(out, (next_out..next_out + n).collect::<Vec<_>>());
            next_out += n;
        }
    }
}

#[test]
fn indices_wrap_past_u32_max() {
    let (mut tx, mut rx) = ring::<u32>(6, SyncMode::Multi, SyncMode::Multi).unwrap();
    let start = u32::MAX - 3;
    for side in [&tx.ring.prod, &tx.ring.cons] {
        side.head.store(start, Ordering::Relaxed);
        side.tail.store(start, Ordering::Relaxed);
    }
    let mut out = Vec::with_capacity(6);
    for round in 0..10u32 {
        let mut items: Vec<u32> = (0..6).map(|i| round * 10 + i).collect();
        assert_eq!(tx.enqueue_bulk(&mut items), 6);
        assert_eq!(tx.free_count(), 0);
        out.clear();
        assert_eq!(rx.dequeue_bulk(&mut out, 6), 6);
        assert_eq!(out, (0..6).map(|i| round * 10 + i).collect::<Vec<_>>());
    }
}

#[test]
fn only_multi_sides_clone() {
    let (tx, rx) = ring::<u8>(4, SyncMode::Single, SyncMode::Single).unwrap();
    assert!(tx.try_clone().is_none() && rx.try_clone().is_none());
    let (tx, rx) = ring::<u8>(4, SyncMode::Multi, SyncMode::Single).unwrap();
    assert!(tx.try_clone().is_some() && rx.try_clone().is_none());
    let (tx, rx) = ring::<u8>(4, SyncMode::Single, SyncMode::Multi).unwrap();
    assert!(tx.try_clone().is_none() && rx.try_clone().is_some());
    let (mut tx, rx) = ring::<u8>(4, SyncMode::Multi, SyncMode::Multi).unwrap();
    let mut tx2 = tx.try_clone().unwrap();
    let mut rx2 = rx.try_clone().unwrap();
    tx.enqueue(1).unwrap();
    tx2.enqueue(2).unwrap();
    drop(rx);
    assert_eq!((rx2.dequeue(), rx2.dequeue()), (Some(1), Some(2)));
}

#[test]
fn items_left_in_the_ring_drop_with_the_last_handle() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (mut tx, mut rx) = ring::<Tracked>(5, SyncMode::Single, SyncMode::Multi).unwrap();
    // Move the indices so the leftovers straddle the end of the slot array.
    for _ in 0..6 {
        assert!(tx.enqueue(Tracked(Arc::clone(&drops))).is_ok());
        drop(rx.dequeue());
    }
    assert_eq!(drops.load(Ordering::Relaxed), 6);
    let mut items: Vec<Tracked> = (0..7).map(|_| Tracked(Arc::clone(&drops))).collect();
    assert_eq!(tx.enqueue_burst(&mut items), 5);
    let rejected = tx.enqueue(Tracked(Arc::clone(&drops))).unwrap_err();
    drop(rejected);
    drop(items);
    assert_eq!(drops.load(Ordering::Relaxed), 6 + 1 + 2);
    let rx2 = rx.try_clone().unwrap();
    drop(rx);
    drop(tx);
    assert_eq!(drops.load(Ordering::Relaxed), 9, "the ring lives while a handle does");
    drop(rx2);
    assert_eq!(drops.load(Ordering::Relaxed), 14);
}

#[test]
fn shared_ring_bulk_and_burst() {
    let ring = SharedRing::<usize>::new(6).unwrap();
    assert_eq!(ring.capacity(), 6);
    assert!(ring.enqueue_bulk(&[1, 2, 3, 4]));
    assert!(!ring.enqueue_bulk(&[5, 6, 7]));
    assert!(!ring.enqueue_bulk(&[0; 7]));
    assert_eq!(ring.enqueue_burst(&[5, 6, 7]), 2);
    assert_eq!(ring.len(), 6);
    let mut out = [0; 4];
    assert!(!ring.dequeue_bulk(&mut [0; 7]));
    assert!(ring.dequeue_bulk(&mut out));
    assert_eq!(out, [1, 2, 3, 4]);
    assert!(!ring.dequeue_bulk(&mut out));
    assert_eq!(out, [1, 2, 3, 4]);
    assert_eq!(ring.dequeue_burst(&mut out), 2);
    assert_eq!(out[..2], [5, 6]);
    assert!(ring.is_empty());
    assert_eq!(ring.dequeue_burst(&mut out), 0);
    assert!(ring.enqueue_bulk(&[]) && ring.dequeue_bulk(&mut []));
}

#[test]
fn handles_are_send_and_shared_ring_is_sync() {
    fn is_send<T: Send>() {}
    fn is_sync<T: Sync>() {}
    is_send::<Producer<Box<u8>>>();
    is_send::<Consumer<Box<u8>>>();
    is_send::<SharedRing<usize>>();
    is_sync::<SharedRing<usize>>();
}

#[derive(Clone, Debug)]
enum Op {
    Enqueue,
    EnqueueBulk(usize),
    EnqueueBurst(usize),
    Dequeue,
    DequeueBulk(usize),
    DequeueBurst(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Enqueue),
        (0..24usize).prop_map(Op::EnqueueBulk),
        (0..24usize).prop_map(Op::EnqueueBurst),
        Just(Op::Dequeue),
        (0..24usize).prop_map(Op::DequeueBulk),
        (0..24usize).prop_map(Op::DequeueBurst),
    ]
}

fn sync_mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![Just(SyncMode::Single), Just(SyncMode::Multi)]
}

proptest! {
    #[test]
    fn ring_matches_a_vecdeque(
        capacity in 1..20usize,
        producers in sync_mode(),
        consumers in sync_mode(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let (mut tx, mut rx) = ring::<u64>(capacity, producers, consumers).unwrap();
        let mut model = VecDeque::new();
        let mut next = 0u64;
        let mut fresh = |n: usize| -> Vec<u64> { (0..n).map(|_| { next += 1; next }).collect() };
        for op in ops {
            let free = capacity - model.len();
            match op {
                Op::Enqueue => {
                    let item = fresh(1)[0];
                    if free > 0 {
                        prop_assert_eq!(tx.enqueue(item), Ok(()));
                        model.push_back(item);
                    } else {
                        prop_assert_eq!(tx.enqueue(item), Err(item));
                    }
                }
                Op::EnqueueBulk(n) => {
                    let mut items = fresh(n);
                    let before = items.clone();
                    let taken = tx.enqueue_bulk(&mut items);
                    if n <= free {
                        prop_assert_eq!(taken, n);
                        prop_assert!(items.is_empty());
                        model.extend(before);
                    } else {
                        prop_assert_eq!(taken, 0);
                        prop_assert_eq!(items, before);
                    }
                }
                Op::EnqueueBurst(n) => {
                    let mut items = fresh(n);
                    let before = items.clone();
                    let taken = tx.enqueue_burst(&mut items);
                    prop_assert_eq!(taken, n.min(free));
                    prop_assert_eq!(&items[..], &before[taken..]);
                    model.extend(&before[..taken]);
                }
                Op::Dequeue => prop_assert_eq!(rx.dequeue(), model.pop_front()),
                Op::DequeueBulk(n) => {
                    let mut out = vec![0];
                    let got = rx.dequeue_bulk(&mut out, n);
                    if n > 0 && n <= model.len() {
                        prop_assert_eq!(got, n);
                        let expected: Vec<u64> = model.drain(..n).collect();
                        prop_assert_eq!(&out[1..], &expected[..]);
                    } else {
                        prop_assert_eq!(got, 0);
                        prop_assert_eq!(out, [0]);
                    }
                }
                Op::DequeueBurst(n) => {
                    let mut out = Vec::with_capacity(n / 2);
                    let got = rx.dequeue_burst(&mut out, n);
                    let expected: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(got, expected.len());
                    prop_assert_eq!(out, expected);
                }
            }
            prop_assert_eq!(tx.len(), model.len());
            prop_assert_eq!(rx.len(), model.len());
            prop_assert_eq!(tx.free_count(), capacity - model.len());
        }
    }

    #[test]
    fn shared_ring_matches_a_vecdeque(
        capacity in 1..20usize,
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        let ring = SharedRing::<u64>::new(capacity).unwrap();
        let mut model = VecDeque::new();
        let mut next = 0u64;
        let mut fresh = |n: usize| -> Vec<u64> { (0..n).map(|_| { next += 1; next }).collect() };
        for op in ops {
            let free = capacity - model.len();
            match op {
                Op::Enqueue | Op::EnqueueBulk(_) => {
                    let items = fresh(if let Op::EnqueueBulk(n) = op { n } else { 1 });
                    let ok = ring.enqueue_bulk(&items);
                    prop_assert_eq!(ok, items.len() <= free);
                    if ok {
                        model.extend(items);
                    }
                }
                Op::EnqueueBurst(n) => {
                    let items = fresh(n);
                    let taken = ring.enqueue_burst(&items);
                    prop_assert_eq!(taken, n.min(free));
                    model.extend(&items[..taken]);
                }
                Op::Dequeue | Op::DequeueBulk(_) => {
                    let mut out = vec![0; if let Op::DequeueBulk(n) = op { n } else { 1 }];
                    let ok = ring.dequeue_bulk(&mut out);
                    prop_assert_eq!(ok, out.len() <= model.len());
                    if ok {
                        let expected: Vec<u64> = model.drain(..out.len()).collect();
                        prop_assert_eq!(out, expected);
                    } else {
                        prop_assert!(out.iter().all(|&x| x == 0));
                    }
                }
                Op::DequeueBurst(n) => {
                    let mut out = vec![0; n];
                    let got = ring.dequeue_burst(&mut out);
                    let expected: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&out[..got], &expected[..]);
                }
            }
            prop_assert_eq!(ring.len(), model.len());
        }
    }
}

/// A tiny per-thread xorshift, to vary batch sizes without shared state.
fn next_rand(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

/// Tags a value with the producer that sent it: producer in the top 16 bits.
fn tag(producer: usize, seq: usize) -> usize {
    producer << 48 | seq
}

/// Checks what the consumers saw: every value of every producer exactly once, and each
/// producer's values in increasing order within each consumer's log.
fn check_logs(logs: &[Vec<usize>], producers: usize, per_producer: usize) {
    let mut seen = vec![vec![false; per_producer]; producers];
    for (consumer, log) in logs.iter().enumerate() {
        let mut last = vec![None; producers];
        for &value in log {
            let (p, seq) = (value >> 48, value & ((1 << 48) - 1));
            assert!(p < producers && seq < per_producer, "consumer {consumer}: bogus value {value:#x}");
            assert!(!seen[p][seq], "producer {p} value {seq} received twice");
            seen[p][seq] = true;
            assert!(last[p] < Some(seq), "consumer {consumer}: producer {p} value {seq} after {:?}", last[p]);
            last[p] = Some(seq);
        }
    }
    for (p, seen) in seen.iter().enumerate() {
        let missing = seen.iter().filter(|&&s| !s).count();
        assert_eq!(missing, 0, "producer {p}: {missing} values never received");
    }
}

/// Sends `tag(id, 0..count)` in order, mixing single, bulk and burst enqueues of random sizes.
fn produce(mut tx: Producer<usize>, id: usize, count: usize) {
    let mut rng = 0x9e37_79b9 ^ (id as u32 + 1).wrapping_mul(0x85eb_ca6b);
    // Values staged in `batch` come before `next`; they are retried until taken.
    let mut batch = Vec::with_capacity(64);
    let mut next = 0;
    while next < count || !batch.is_empty() {
        if batch.is_empty() && next_rand(&mut rng) % 3 == 0 {
            if tx.enqueue(tag(id, next)).is_ok() {
                next += 1;
            }
            continue;
        }
        if batch.is_empty() {
            let n = (1 + next_rand(&mut rng) as usize % 64).min(count - next);
            batch.extend((next..next + n).map(|seq| tag(id, seq)));
            next += n;
        }
        let taken =
            if next_rand(&mut rng) % 2 == 0 { tx.enqueue_bulk(&mut batch) } else { tx.enqueue_burst(&mut batch) };
        if taken == 0 {
            thread::yield_now();
        }
    }
}

/// Receives until `received` reaches `total`, mixing single, bulk and burst dequeues of random
/// sizes; returns what it received, in order.
fn consume(mut rx: Consumer<usize>, id: usize, received: &AtomicUsize, total: usize) -> Vec<usize> {
    let mut rng = 0x1234_5678 ^ (id as u32 + 1).wrapping_mul(0xc2b2_ae35);
    let mut log = Vec::with_capacity(total);
    while received.load(Ordering::Relaxed) < total {
        log.reserve(64);
        let got = match next_rand(&mut rng) % 3 {
            0 => rx.dequeue().map(|value| log.push(value)).map_or(0, |()| 1),
            1 => rx.dequeue_bulk(&mut log, 1 + next_rand(&mut rng) as usize % 64),
            _ => rx.dequeue_burst(&mut log, 64),
        };
        if got == 0 {
            thread::yield_now();
        } else {
            received.fetch_add(got, Ordering::Relaxed);
        }
    }
    log
}

/// Runs `producers` x `per_producer` tagged values through a ring to `consumers` threads and
/// checks delivery.
fn stress(sync: SyncMode, producers: usize, consumers: usize, per_producer: usize, capacity: usize) {
    let (tx, rx) = ring::<usize>(capacity, sync, sync).unwrap();
    let total = producers * per_producer;
    let received = Arc::new(AtomicUsize::new(0));
    let mut txs = vec![tx];
    let mut rxs = vec![rx];
    for _ in 1..producers {
        txs.push(txs[0].try_clone().unwrap());
    }
    for _ in 1..consumers {
        rxs.push(rxs[0].try_clone().unwrap());
    }
    let senders: Vec<_> =
        txs.into_iter().enumerate().map(|(id, tx)| thread::spawn(move || produce(tx, id, per_producer))).collect();
    let receivers: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(id, rx)| {
            let received = Arc::clone(&received);
            thread::spawn(move || consume(rx, id, &received, total))
        })
        .collect();
    senders.into_iter().for_each(|t| t.join().unwrap());
    let logs: Vec<Vec<usize>> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(logs.iter().map(Vec::len).sum::<usize>(), total);
    check_logs(&logs, producers, per_producer);
}

#[test]
fn spsc_stress_keeps_order() {
    let count = if cfg!(debug_assertions) { 1_000_000 } else { 10_000_000 };
    stress(SyncMode::Single, 1, 1, count, 256);
}

#[test]
fn mpmc_stress_delivers_each_value_once_in_producer_order() {
    let per_producer = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
    stress(SyncMode::Multi, 4, 4, per_producer, 128);
}

#[test]
fn shared_ring_mpmc_stress_delivers_each_value_once_in_producer_order() {
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 3;
    let per_producer = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
    let total = PRODUCERS * per_producer;
    let ring = Arc::new(SharedRing::<usize>::new(100).unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut rng = 0xdead_beef ^ (id as u32 + 1).wrapping_mul(0x85eb_ca6b);
                let mut next = 0;
                while next < per_producer {
                    let n = (1 + next_rand(&mut rng) as usize % 32).min(per_producer - next);
                    let batch: Vec<usize> = (next..next + n).map(|seq| tag(id, seq)).collect();
                    let taken = if next_rand(&mut rng) % 2 == 0 {
                        if ring.enqueue_bulk(&batch) {
                            n
                        } else {
                            0
                        }
                    } else {
                        ring.enqueue_burst(&batch)
                    };
                    next += taken;
                    if taken == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..CONSUMERS)
        .map(|id| {
            let ring = Arc::clone(&ring);
            let received = Arc::clone(&received);
            thread::spawn(move || {
                let mut rng = 0x0bad_cafe ^ (id as u32 + 1).wrapping_mul(0xc2b2_ae35);
                let mut log = Vec::with_capacity(total);
                let mut buf = [0; 32];
                while received.load(Ordering::Relaxed) < total {
                    let n = 1 + next_rand(&mut rng) as usize % 32;
                    let got = if next_rand(&mut rng) % 2 == 0 {
                        if ring.dequeue_bulk(&mut buf[..n]) {
                            n
                        } else {
                            0
                        }
                    } else {
                        ring.dequeue_burst(&mut buf[..n])
                    };
                    log.extend_from_slice(&buf[..got]);
                    if got == 0 {
                        thread::yield_now();
                    } else {
                        received.fetch_add(got, Ordering::Relaxed);
                    }
                }
                log
            })
        })
        .collect();
    senders.into_iter().for_each(|t| t.join().unwrap());
    let logs: Vec<Vec<usize>> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
    check_logs(&logs, PRODUCERS, per_producer);
    assert!(ring.is_empty());
}

/// The mempool's use: a full ring of buffer indices, threads taking some and putting them
/// back. A bulk put of what one took must always fit, even with the ring at exact capacity.
#[test]
fn shared_ring_as_a_free_list_never_loses_or_duplicates() {
    const ITEMS: usize = 1000;
    const THREADS: usize = 4;
    let rounds = if cfg!(debug_assertions) { 50_000 } else { 500_000 };
    let ring = Arc::new(SharedRing::<usize>::new(ITEMS).unwrap());
    let all: Vec<usize> = (0..ITEMS).collect();
    assert!(ring.enqueue_bulk(&all));
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                let mut rng = 0x5eed ^ (id as u32 + 1).wrapping_mul(0x27d4_eb2f);
                let mut held = [0; 32];
                for _ in 0..rounds {
                    let n = 1 + next_rand(&mut rng) as usize % 32;
                    let got = if next_rand(&mut rng) % 2 == 0 {
                        if ring.dequeue_bulk(&mut held[..n]) {
                            n
                        } else {
                            0
                        }
                    } else {
                        ring.dequeue_burst(&mut held[..n])
                    };
                    assert!(held[..got].iter().all(|&i| i < ITEMS));
                    assert!(ring.enqueue_bulk(&held[..got]), "putting back {got} items found no room");
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|t| t.join().unwrap());
    let mut left = vec![0; ITEMS];
    assert!(ring.dequeue_bulk(&mut left));
    left.sort_unstable();
    assert_eq!(left, all);
}
