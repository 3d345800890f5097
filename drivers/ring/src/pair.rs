//! Rings and who holds their ends: a loopback port holds both ends of its rings; a pair's first
//! port makes the rings of both directions and parks the other side's ends here until the second
//! port takes them.

use std::collections::HashMap;

use burst_ethdev::{DevArgs, EthError};
use burst_mem::ring::{ring, Consumer, Producer, SyncMode};
use burst_mem::PacketBuf;

/// The key of the driver's state in [`burst_ethdev::VdevShared`].
pub(crate) const SHARED_KEY: &str = "net_ring";

/// One port's ring ends: RX queue `q` dequeues from `rx[q]`, TX queue `q` enqueues to `tx[q]`.
pub(crate) struct Ends {
    pub rx: Vec<Consumer<PacketBuf>>,
    pub tx: Vec<Producer<PacketBuf>>,
}

/// One ring of `size` packets. Single producer and single consumer: each end lives in one
/// queue's slot and only that queue's handle uses it (DPDK's `RING_F_SP_ENQ | RING_F_SC_DEQ`).
fn one_ring(args: &DevArgs, size: usize) -> Result<(Producer<PacketBuf>, Consumer<PacketBuf>), EthError> {
    ring::<PacketBuf>(size, SyncMode::Single, SyncMode::Single).map_err(|e| args.error(format!("size={size}: {e}")))
}

/// A loopback port's ends: one ring per queue, its TX end and its RX end both the port's.
pub(crate) fn loopback(args: &DevArgs, queues: u16, size: usize) -> Result<Ends, EthError> {
    let mut ends = Ends { rx: Vec::with_capacity(queues.into()), tx: Vec::with_capacity(queues.into()) };
    for _ in 0..queues {
        let (tx, rx) = one_ring(args, size)?;
        ends.tx.push(tx);
        ends.rx.push(rx);
    }
    Ok(ends)
}

/// A pair by name: waiting for its second port, or complete.
enum Pair {
    /// The first port was probed; `ends` are the second port's.
    Waiting { first: String, queues: u16, size: usize, ends: Ends },
    /// Both ports were probed.
    Joined { first: String, second: String },
}

/// The driver's state across probes: every pair named so far.
#[derive(Default)]
pub(crate) struct Pairs {
    pairs: HashMap<String, Pair>,
}

impl Pairs {
    /// The ends for port `device` (arguments `args`) joining pair `name` with `queues` queues of
    /// rings of `size`: fresh rings if it is the pair's first port, the parked ends if it is the
    /// second; an error for a third port or one that disagrees with the first.
    pub(crate) fn join(
        &mut self,
        name: &str,
        device: &str,
        args: &DevArgs,
        queues: u16,
        size: usize,
    ) -> Result<Ends, EthError> {
        match self.pairs.remove(name) {
            None => {
                let (mine, theirs) = Self::make(args, queues, size)?;
                let waiting = Pair::Waiting { first: device.to_string(), queues, size, ends: theirs };
                self.pairs.insert(name.to_string(), waiting);
                Ok(mine)
            }
            Some(Pair::Joined { first, second }) => {
                let err = args.error(format!(
                    "pair={name} already joins {first} and {second}: a pair has two ports; give this one another \
                     pair= name"
                ));
                self.pairs.insert(name.to_string(), Pair::Joined { first, second });
                Err(err)
            }
            Some(Pair::Waiting { first, queues: q1, size: s1, ends }) if (q1, s1) != (queues, size) => {
                let err = args.error(format!(
                    "pair={name}: {first} has queues={q1},size={s1} and this port queues={queues},size={size}: give \
                     both sides of a pair the same queues= and size="
                ));
                self.pairs.insert(name.to_string(), Pair::Waiting { first, queues: q1, size: s1, ends });
                Err(err)
            }
            Some(Pair::Waiting { first, ends, .. }) => {
                self.pairs.insert(name.to_string(), Pair::Joined { first, second: device.to_string() });
                Ok(ends)
            }
        }
    }

    /// Fails naming the first pair that got only one port (a typo in a `pair=` name would
    /// otherwise leave a port sending into a ring nobody reads).
    pub(crate) fn check_complete(&self) -> Result<(), EthError> {
        let mut waiting: Vec<_> = self
            .pairs
            .iter()
            .filter_map(|(name, pair)| match pair {
                Pair::Waiting { first, .. } => Some((name, first)),
                Pair::Joined { .. } => None,
            })
            .collect();
        waiting.sort();
        match waiting.first() {
            None => Ok(()),
            Some((name, first)) => Err(EthError::DevArgs {
                device: (*first).clone(),
                message: format!(
                    "pair={name} has only this port: give a second one the same pair= name (--vdev net_ringN,pair={name}), or drop pair= for a loopback port"
                ),
            }),
        }
    }

    /// Rings for both directions of each queue: the first port's ends and the second's.
    fn make(args: &DevArgs, queues: u16, size: usize) -> Result<(Ends, Ends), EthError> {
        let n = usize::from(queues);
        let mut first = Ends { rx: Vec::with_capacity(n), tx: Vec::with_capacity(n) };
        let mut second = Ends { rx: Vec::with_capacity(n), tx: Vec::with_capacity(n) };
        for _ in 0..queues {
            let (to_second, from_first) = one_ring(args, size)?;
            let (to_first, from_second) = one_ring(args, size)?;
            first.tx.push(to_second);
            second.rx.push(from_first);
            second.tx.push(to_first);
            first.rx.push(from_second);
        }
        Ok((first, second))
    }
}
