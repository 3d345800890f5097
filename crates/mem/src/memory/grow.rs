//! How the memory grows and shrinks: a segment is mapped when a reservation needs room (or at
//! start, for what `--socket-mem`/`-m` pre-reserve, which stays), every mapper and listener is
//! told, and a segment no reservation touches any more is given back to the system.

use crate::error::MemError;
use crate::hugepage::PageSize;
use crate::segment::AddError;
use crate::socket_mem::SocketMem;

use super::{Memory, State};

impl Memory {
    pub(super) fn prereserve(&self, socket_mem: &SocketMem, sockets: &[u32]) -> Result<(), MemError> {
        let per_socket: Vec<(usize, u64)> = match socket_mem {
            SocketMem::None => return Ok(()),
            SocketMem::Total(bytes) => vec![(0, *bytes)],
            // Value i is for socket id i, as DPDK reads it (ids may have gaps).
            SocketMem::PerSocket(v) => {
                let mut out = Vec::new();
                for (id, &bytes) in v.iter().enumerate() {
                    match sockets.iter().position(|&s| s as usize == id) {
                        Some(li) => out.push((li, bytes)),
                        None if bytes == 0 => {}
                        None => return Err(MemError::UnknownSocket { socket: id as u32, available: sockets.to_vec() }),
                    }
                }
                out
            }
        };
        let mut st = self.lock();
        for (li, bytes) in per_socket {
            let cell = &self.inner.lists[li];
            let n = bytes.div_ceil(cell.seg_size as u64) as usize;
            if n > st.refs[li].len() {
                return Err(MemError::TooLarge { asked: bytes, limit: cell.len as u64 });
            }
            for idx in 0..n {
                self.add_segment(&mut st, li, idx, bytes - (idx * cell.seg_size) as u64)?;
                st.pinned[li][idx] = true;
            }
        }
        Ok(())
    }

    /// Maps segment `idx` of list `li` and tells every DMA mapper and memory listener about it;
    /// if one refuses, the segment is unmapped again.
    pub(super) fn add_segment(&self, st: &mut State, li: usize, idx: usize, needed: u64) -> Result<u64, MemError> {
        let cell = &self.inner.lists[li];
        let mut list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        let iova = match list.add(idx, self.inner.mode, self.inner.pagemap.as_ref(), self.inner.numa) {
            Ok(iova) => iova,
            Err(AddError::Failed(e)) => return Err(e),
            Err(AddError::NoFreePages) => {
                let suggest = suggest_reservation(needed, self.inner.page_size);
                let node_hint = if self.inner.numa { format!(" --node {}", cell.socket) } else { String::new() };
                return Err(MemError::NoFreeHugepages {
                    size: self.inner.page_size,
                    socket: cell.socket,
                    needed,
                    suggest,
                    node_hint,
                });
            }
        };
        if let Err(e) = st.registry.segment_added(&list, idx, iova, cell.seg_size) {
            list.remove(idx);
            return Err(e);
        }
        tracing::debug!(socket = cell.socket, va = list.addr(idx), iova, "added a DMA segment");
        Ok(iova)
    }

    /// Gives back every segment that no reservation touches and that was not pre-reserved.
    pub(super) fn trim(&self, st: &mut State) {
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let mut list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if st.refs[li][idx] == 0 && !st.pinned[li][idx] && list.is_mapped(idx) {
                    st.registry.segment_removed(&list, idx, cell.seg_size);
                    list.remove(idx);
                    tracing::debug!(socket = cell.socket, "gave a DMA segment back");
                }
            }
        }
    }
}

fn suggest_reservation(needed: u64, size: PageSize) -> String {
    let bytes = needed.max(size.bytes()).next_multiple_of(size.bytes());
    let mib = bytes.div_ceil(1 << 20).max(2);
    let pagesize = if size == PageSize::SIZE_2M { String::new() } else { format!(" --pagesize {size}") };
    if mib % 1024 == 0 {
        format!("{}G{pagesize}", mib / 1024)
    } else {
        format!("{mib}M{pagesize}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_suggestions_are_whole_pages() {
        assert_eq!(suggest_reservation(1, PageSize::SIZE_2M), "2M");
        assert_eq!(suggest_reservation(3 << 20, PageSize::SIZE_2M), "4M");
        assert_eq!(suggest_reservation(1 << 20, PageSize::SIZE_1G), "1G --pagesize 1G");
    }
}
