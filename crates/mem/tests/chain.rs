//! Chained packets against a model: random splits, appends, prepends, cuts from either end,
//! chains of chains, reads and linearisation keep a packet's bytes equal to a `Vec<u8>` doing
//! the same, its counts right, and every segment goes back to its own pool.

use burst_mem::testing::memory;
use burst_mem::{ChainBuilder, ChainError, Memory, PacketBuf, PacketPool, PacketPoolConfig};
use proptest::prelude::*;

/// A pool of `count` buffers of `data_room` bytes after a 32-byte headroom, no cache (exact
/// counts).
fn pool(mem: &Memory, name: &str, count: usize, data_room: u16) -> PacketPool {
    let mut cfg = PacketPoolConfig::new(name, count);
    cfg.cache_size = 0;
    cfg.data_room = data_room;
    cfg.headroom = 32;
    PacketPool::new(mem, &cfg).unwrap()
}

/// The packet's bytes, segment after segment.
fn bytes(p: &PacketBuf) -> Vec<u8> {
    p.segments().flat_map(|s| s.data().to_vec()).collect()
}

/// A packet holding `data` in segments of at most `seg` bytes from `pool`.
fn packet(pool: &PacketPool, data: &[u8], seg: usize) -> PacketBuf {
    let mut b = ChainBuilder::new();
    let mut chunks: Vec<&[u8]> = data.chunks(seg.max(1)).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let mut s = pool.alloc().expect("a free buffer");
        assert!(s.set_data(chunk));
        b.push(s).map_err(|(_, e)| e).unwrap();
    }
    b.take().unwrap()
}

fn check(p: &PacketBuf, model: &[u8]) {
    assert_eq!(bytes(p), model);
    assert_eq!(p.pkt_len() as usize, model.len());
    assert_eq!(usize::from(p.nb_segs()), p.segments().count());
    assert_eq!(p.is_contiguous(), p.nb_segs() == 1);
}

#[test]
fn a_chain_is_its_segments_and_frees_each_to_its_own_pool() {
    let mem = memory();
    let small = pool(&mem, "small", 16, 100);
    let big = pool(&mem, "big", 4, 2048);
    let mut p = big.alloc().unwrap();
    assert!(p.set_data(&[1; 50]));
    let mut tail = small.alloc().unwrap();
    assert!(tail.set_data(&[2; 100]));
    p.chain(tail).unwrap();
    let mut tail2 = packet(&small, &[3; 250], 100);
    tail2.set_port(9);
    assert_eq!(tail2.nb_segs(), 3);
    p.chain(tail2).unwrap();
    assert_eq!((p.nb_segs(), p.pkt_len(), p.len(), p.port()), (5, 400, 50, 0), "the head's metadata stays");
    let lens: Vec<usize> = p.segments().map(|s| s.len()).collect();
    assert_eq!(lens, [50, 100, 100, 100, 50]);
    assert_eq!((big.mempool().in_use(), small.mempool().in_use()), (1, 4));
    drop(p);
    assert!(big.mempool().is_full() && small.mempool().is_full());
    // Segments come back as a pool wants them: the next allocation is one segment.
    let fresh = small.alloc().unwrap();
    assert_eq!((fresh.nb_segs(), fresh.pkt_len(), fresh.is_contiguous()), (1, 0, true));
}

#[test]
fn reads_cross_segments_and_stop_at_the_end() {
    let mem = memory();
    let pool = pool(&mem, "read", 16, 64);
    let data: Vec<u8> = (0..=255).collect();
    let p = packet(&pool, &data, 64);
    let mut out = [0u8; 10];
    assert_eq!(p.read(5, &mut out), Some(&data[5..15]), "inside the first segment");
    let mut out = [0u8; 10];
    assert_eq!(p.read(60, &mut out), Some(&data[60..70]), "across the first two");
    let mut out = [0u8; 200];
    assert_eq!(p.read(50, &mut out), Some(&data[50..250]), "across four");
    let mut out = [0u8; 2];
    assert_eq!(p.read(255, &mut out), None, "past the end");
    assert_eq!(p.read(usize::MAX, &mut out), None, "no overflow");
}

#[test]
fn linearize_copies_into_the_first_buffer_or_says_why_not() {
    let mem = memory();
    let small = pool(&mem, "lin-small", 16, 64);
    let big = pool(&mem, "lin-big", 4, 2048);
    let data: Vec<u8> = (0..200).map(|i| i as u8).collect();
    let mut p = packet(&small, &data, 64);
    let err = p.linearize().unwrap_err();
    assert_eq!(err, ChainError::DoesNotFit { pkt_len: 200, nb_segs: 4, room: 64 });
    assert!(err.to_string().contains("use a pool with a data room of at least 200 bytes"), "{err}");
    check(&p, &data);
    let mut head = big.alloc().unwrap();
    assert!(head.set_data(&data[..10]));
    let mut rest = packet(&small, &data[10..], 64);
    rest.set_port(1);
    head.chain(rest).unwrap();
    head.linearize().unwrap();
    assert_eq!((head.nb_segs(), head.len(), head.data()), (1, 200, &data[..]));
    drop((p, head));
    assert!(small.mempool().is_full() && big.mempool().is_full());
}

#[test]
fn a_builder_refuses_a_chain_and_frees_what_it_holds() {
    let mem = memory();
    let pool = pool(&mem, "builder", 8, 64);
    let mut b = ChainBuilder::new();
    let chain = packet(&pool, &[0; 100], 64);
    let (back, err) = b.push(chain).unwrap_err();
    assert!(matches!(err, ChainError::TooManySegments { more: 2, .. }), "{err}");
    drop(back);
    for _ in 0..3 {
        let mut s = pool.alloc().unwrap();
        s.set_len(64);
        b.push(s).unwrap();
    }
    assert_eq!((b.nb_segs(), b.pkt_len()), (3, 192));
    drop(b);
    assert!(pool.mempool().is_full());
}

#[test]
fn free_bulk_frees_chains_among_single_buffers() {
    let mem = memory();
    let a = pool(&mem, "bulk-a", 32, 64);
    let b = pool(&mem, "bulk-b", 32, 64);
    let mut bufs = vec![a.alloc().unwrap(), packet(&b, &[1; 300], 64), a.alloc().unwrap(), packet(&a, &[2; 70], 64)];
    bufs.push(b.alloc().unwrap());
    PacketPool::free_bulk(&mut bufs);
    assert!(bufs.is_empty() && a.mempool().is_full() && b.mempool().is_full());
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Append(usize, u8),
    Prepend(usize, u8),
    Adj(usize),
    Trim(usize),
    Chain(Vec<u8>, usize),
    Read(usize, usize),
    Linearize,
    SetLen(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..80, any::<u8>()).prop_map(|(n, b)| Op::Append(n, b)),
        (0usize..40, any::<u8>()).prop_map(|(n, b)| Op::Prepend(n, b)),
        (0usize..300).prop_map(Op::Adj),
        (0usize..300).prop_map(Op::Trim),
        (proptest::collection::vec(any::<u8>(), 0..200), 8usize..80).prop_map(|(d, s)| Op::Chain(d, s)),
        (0usize..400, 0usize..200).prop_map(|(o, n)| Op::Read(o, n)),
        Just(Op::Linearize),
        (0usize..200).prop_map(Op::SetLen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_operation_keeps_the_bytes_of_a_vec_doing_the_same(
        first in proptest::collection::vec(any::<u8>(), 0..300),
        seg in 8usize..=96,
        ops in proptest::collection::vec(op(), 1..25),
    ) {
        let mem = memory();
        let small = pool(&mem, "model-small", 512, 96);
        let big = pool(&mem, "model-big", 8, 1024);
        let mut p = packet(&small, &first, seg);
        let mut model = first.clone();
        for op in ops {
            match op {
                Op::Append(n, b) => {
                    if let Some(room) = p.append(n) {
                        room.fill(b);
                        model.extend(std::iter::repeat_n(b, n));
                    }
                }
                Op::Prepend(n, b) => {
                    if let Some(room) = p.prepend(n) {
                        room.fill(b);
                        model.splice(0..0, std::iter::repeat_n(b, n));
                    }
                }
                Op::Adj(n) => {
                    let ok = p.adj(n).is_some();
                    prop_assert_eq!(ok, n <= model.len());
                    if ok {
                        model.drain(..n);
                    }
                }
                Op::Trim(n) => {
                    let ok = p.trim(n);
                    prop_assert_eq!(ok, n <= model.len());
                    if ok {
                        model.truncate(model.len() - n);
                    }
                }
                Op::Chain(data, s) => {
                    if small.mempool().available() > data.len() / s + 2 {
                        let tail = packet(&small, &data, s);
                        p.chain(tail).map_err(|(_, e)| e).unwrap();
                        model.extend(&data);
                    }
                }
                Op::Read(off, n) => {
                    let mut out = vec![0u8; n];
                    let got = p.read(off, &mut out).map(<[u8]>::to_vec);
                    prop_assert_eq!(got, model.get(off..off + n).map(<[u8]>::to_vec));
                }
                Op::Linearize => {
                    let room = p.buf_len() - usize::from(p.data_off());
                    match p.linearize() {
                        Ok(()) => prop_assert!(p.is_contiguous() && model.len() <= room.max(p.len())),
                        Err(ChainError::DoesNotFit { pkt_len, .. }) => {
                            prop_assert!(pkt_len as usize > room);
                        }
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                Op::SetLen(n) => {
                    let room = p.buf_len() - usize::from(p.data_off());
                    let keep = model.len().min(p.len());
                    let set = p.set_len(n);
                    prop_assert_eq!(set, n.min(room));
                    // The first segment's old bytes stay; new ones are whatever the buffer held.
                    model.truncate(keep);
                    model.extend_from_slice(&p.data()[keep.min(set)..]);
                    model.truncate(set);
                }
            }
            check(&p, &model);
            // A chain moved into a bigger first buffer keeps its bytes too.
            if model.len() < 1000 && big.mempool().available() > 0 && p.nb_segs() > 3 {
                let mut head = big.alloc().unwrap();
                head.set_len(0);
                head.chain(std::mem::replace(&mut p, small.alloc().unwrap())).map_err(|(_, e)| e).unwrap();
                head.linearize().unwrap();
                prop_assert_eq!(head.data(), &model[..]);
                p = head;
            }
        }
        drop(p);
        prop_assert!(small.mempool().is_full() && big.mempool().is_full(), "every segment back in its pool");
    }
}

#[test]
fn set_data_at_takes_an_offset_and_length_inside_the_buffer_only() {
    let mem = memory();
    let p = pool(&mem, "set_data_at", 8, 256);
    let mut b = packet(&p, &[7u8; 600], 200);
    assert_eq!(b.nb_segs(), 3);
    assert!(b.set_data_at(256, 32), "the last 32 bytes of a 288-byte buffer");
    assert_eq!((b.data_off(), b.len(), b.pkt_len(), b.nb_segs()), (256, 32, 32, 1));
    assert_eq!(p.mempool().in_use(), 1, "the chain's other segments went back");
    assert!(!b.set_data_at(257, 32), "one byte past the buffer");
    assert!(!b.set_data_at(usize::MAX, 1) && !b.set_data_at(0, usize::MAX));
    assert_eq!((b.data_off(), b.len()), (256, 32), "a refusal changes nothing");
    assert!(b.set_data_at(0, 288));
    drop(b);
    assert!(p.mempool().is_full());
}

#[test]
fn a_pool_in_one_run_of_memory_has_a_stride() {
    let mem = memory();
    let p = pool(&mem, "stride", 16, 256);
    let stride = p.mempool().object_stride().expect("--no-huge memory is IOVA as VA: objects back to back");
    assert_eq!(stride, p.mempool().elt_size());
    let base = p.mempool().memzone().as_ptr() as usize;
    let bufs: Vec<PacketBuf> = (0..16).map(|_| p.alloc().unwrap()).collect();
    for b in &bufs {
        let obj = b.buf_addr() as usize - 128 - base;
        assert_eq!(obj % stride, 0, "every object starts a stride from the zone's start");
        assert!(obj / stride < 16);
    }
}
