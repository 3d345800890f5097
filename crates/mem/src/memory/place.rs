//! Where a memzone goes: first fit over the free ranges of a socket's list (the calling thread's
//! socket first), mapping segments as a candidate needs them and, for an IOVA-contiguous zone in
//! PA mode, sliding past physical discontinuities; and its range given back when it drops.

use std::sync::Arc;

use crate::error::MemError;
use crate::iova::IovaMode;
use crate::memzone::{Memzone, MemzoneFlags};
use crate::segment;

use super::{Memory, State, ZoneInfo, MAX_NAME};

impl Memory {
    /// Reserves a named, aligned block of DMA memory on `socket` (`None`: the calling thread's
    /// socket first, then any). With [`MemzoneFlags::IOVA_CONTIG`] the block is contiguous in
    /// IOVA space too, as hardware descriptor rings need.
    pub fn reserve(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        align: usize,
        flags: MemzoneFlags,
    ) -> Result<Memzone, MemError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(MemError::BadName { name: name.to_string() });
        }
        if len == 0 {
            return Err(MemError::BadRequest(format!("memzone {name:?}: size 0")));
        }
        let align = align.max(64);
        if !align.is_power_of_two() {
            return Err(MemError::BadRequest(format!("memzone {name:?}: alignment {align} is not a power of two")));
        }
        let limit = self.inner.lists[0].len;
        if len > limit {
            return Err(MemError::TooLarge { asked: len as u64, limit: limit as u64 });
        }
        if align > limit {
            return Err(MemError::BadRequest(format!(
                "memzone {name:?}: alignment {align} is larger than a socket's memory"
            )));
        }
        let order = self.socket_order(socket)?;
        let mut st = self.lock();
        if st.zones.contains_key(name) {
            return Err(MemError::MemzoneExists { name: name.to_string() });
        }
        let contig = flags.contains(MemzoneFlags::IOVA_CONTIG);
        let mut best_run = 0u64;
        let mut result = Err(MemError::TooLarge { asked: len as u64, limit: self.inner.lists[0].len as u64 });
        for li in order {
            match self.place(&mut st, li, len, align, contig, &mut best_run) {
                Ok(Some(offset)) => {
                    result = Ok((li, offset));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    if socket.is_some() {
                        break;
                    }
                }
            }
        }
        let outcome = match result {
            Ok((li, offset)) => {
                let cell = &self.inner.lists[li];
                let addr = cell.base + offset;
                let iova = {
                    let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
                    list.iova(offset / cell.seg_size) + (offset % cell.seg_size) as u64
                };
                let info = ZoneInfo { addr, len, iova, socket: cell.socket, iova_contig: contig };
                st.zones.insert(name.to_string(), info.clone());
                Ok(Memzone::new(self.clone(), name.to_string(), li, offset, info))
            }
            Err(MemError::NoFreeHugepages { .. }) | Err(MemError::TooLarge { .. })
                if contig && self.inner.mode == IovaMode::Pa && len > self.segment_size() =>
            {
                let found = (0..self.inner.lists.len()).map(|li| self.longest_run(li)).fold(best_run, u64::max);
                Err(MemError::NotEnoughContiguous {
                    name: name.to_string(),
                    asked: len as u64,
                    found,
                    size: self.inner.page_size,
                })
            }
            Err(e) => Err(e),
        };
        self.trim(&mut st);
        outcome
    }

    /// The longest physically contiguous run of mapped segments in list `li`, in bytes.
    fn longest_run(&self, li: usize) -> u64 {
        let cell = &self.inner.lists[li];
        let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        let (mut best, mut run, mut prev) = (0u64, 0u64, None::<u64>);
        for idx in 0..list.iovas.len() {
            let iova = list.iova(idx);
            if iova == segment::UNMAPPED {
                prev = None;
                run = 0;
                continue;
            }
            run = if prev == Some(iova.wrapping_sub(cell.seg_size as u64)) { run + 1 } else { 1 };
            prev = Some(iova);
            best = best.max(run * cell.seg_size as u64);
        }
        best
    }

    fn socket_order(&self, socket: Option<u32>) -> Result<Vec<usize>, MemError> {
        let sockets = self.sockets();
        match socket {
            Some(s) => match sockets.iter().position(|&x| x == s) {
                Some(li) => Ok(vec![li]),
                None => Err(MemError::UnknownSocket { socket: s, available: sockets }),
            },
            None => {
                let here = current_node();
                let mut order: Vec<usize> = (0..sockets.len()).collect();
                order.sort_by_key(|&li| sockets[li] != here);
                Ok(order)
            }
        }
    }

    /// First fit in list `li`: maps segments as the candidate range needs them and, for an
    /// IOVA-contiguous request in PA mode, slides past physical discontinuities.
    fn place(
        &self,
        st: &mut State,
        li: usize,
        len: usize,
        align: usize,
        contig: bool,
        best_run: &mut u64,
    ) -> Result<Option<usize>, MemError> {
        let cell = Arc::clone(&self.inner.lists[li]);
        let seg = cell.seg_size;
        let check_phys = contig && self.inner.mode == IovaMode::Pa;
        let ranges: Vec<(usize, usize)> = st.free[li].iter().collect();
        // Out of pages for one range, a later one may still fit in segments already mapped.
        let mut no_pages = None;
        'range: for (off, flen) in ranges {
            let end = off + flen;
            let mut start = off.next_multiple_of(align);
            'candidate: while start + len <= end {
                let first = start / seg;
                let last = (start + len - 1) / seg;
                for idx in first..=last {
                    let mapped = cell.list.lock().unwrap_or_else(|p| p.into_inner()).is_mapped(idx);
                    if !mapped {
                        let needed = (start + len).saturating_sub(idx * seg) as u64;
                        match self.add_segment(st, li, idx, needed) {
                            Ok(_) => {}
                            Err(e @ MemError::NoFreeHugepages { .. }) => {
                                no_pages.get_or_insert(e);
                                continue 'range;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                if check_phys {
                    let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
                    for idx in first..last {
                        if list.iova(idx + 1) != list.iova(idx) + seg as u64 {
                            *best_run = (*best_run).max(((idx + 1) * seg - start) as u64);
                            start = ((idx + 1) * seg).next_multiple_of(align);
                            continue 'candidate;
                        }
                    }
                    *best_run = (*best_run).max(len as u64);
                }
                // `[start, start + len)` lies in the free range `off` (the loop's bounds).
                let taken = st.free[li].take(start, len);
                debug_assert!(taken, "{start:#x}+{len:#x} is not in the free range at {off:#x}");
                for idx in first..=last {
                    st.refs[li][idx] += 1;
                }
                return Ok(Some(start));
            }
        }
        match no_pages {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Returns a memzone's range to the free list (called by `Memzone`'s drop).
    pub(crate) fn release(&self, name: &str, li: usize, offset: usize, len: usize) {
        let mut st = self.lock();
        st.zones.remove(name);
        st.free[li].give(offset, len);
        let seg = self.inner.lists[li].seg_size;
        for idx in offset / seg..=(offset + len - 1) / seg {
            st.refs[li][idx] -= 1;
        }
        self.trim(&mut st);
    }
}

/// The NUMA node of the CPU this thread runs on now.
fn current_node() -> u32 {
    let mut cpu = 0u32;
    let mut node = 0u32;
    // SAFETY: getcpu writes two u32s we own; the third argument is unused and may be null.
    let rc = unsafe { libc::syscall(libc::SYS_getcpu, &mut cpu, &mut node, std::ptr::null_mut::<libc::c_void>()) };
    if rc == 0 {
        node
    } else {
        0
    }
}
