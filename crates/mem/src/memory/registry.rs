//! Who is told of the memory's segments: DMA mappers (an IOMMU to program, such as the VFIO
//! container) and memory listeners (a vhost-user frontend's memory table). Each is told of every
//! segment mapped when it registers, then of every segment added or removed, synchronously,
//! under the memory's lock; one that refuses a segment makes adding it fail.

use std::sync::Arc;

use crate::error::MemError;
use crate::iova::DmaMapper;
use crate::segment::SegmentList;
use crate::shared::{FileId, ListenerId, MemoryListener, RegionSet, SharedRegion, SharedSegment};

use super::Memory;

/// Identifies a registered [`DmaMapper`] so it can be removed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapperId(u64);

/// The registered mappers and listeners, in registration order.
#[derive(Default)]
pub(super) struct Registry {
    mappers: Vec<(u64, Arc<dyn DmaMapper>)>,
    next_mapper: u64,
    listeners: Vec<(u64, Arc<dyn MemoryListener>)>,
    next_listener: u64,
}

impl Registry {
    /// Tells every mapper, then every listener, of segment `idx` of `list`, just mapped at `iova`
    /// (`len` bytes). If one refuses, those told already hear of its removal (every mapper, when
    /// a listener refuses) and the refusal is returned: the caller unmaps the segment.
    pub(super) fn segment_added(&self, list: &SegmentList, idx: usize, iova: u64, len: usize) -> Result<(), MemError> {
        let va = list.addr(idx);
        for (n, (_, mapper)) in self.mappers.iter().enumerate() {
            if let Err(source) = mapper.map(va, iova, len) {
                for (_, m) in &self.mappers[..n] {
                    let _ = m.unmap(iova, len);
                }
                return Err(MemError::DmaMap { va, len, source });
            }
        }
        if self.listeners.is_empty() {
            return Ok(());
        }
        let refused = match shared_segment(list, idx) {
            Ok(seg) => {
                let mut refused = None;
                for (n, (_, listener)) in self.listeners.iter().enumerate() {
                    if let Err(source) = listener.segment_added(&seg) {
                        for (_, l) in &self.listeners[..n] {
                            l.segment_removed(&seg);
                        }
                        refused = Some(MemError::DmaMap { va, len, source });
                        break;
                    }
                }
                refused
            }
            Err(e) => Some(e),
        };
        match refused {
            Some(e) => {
                for (_, m) in &self.mappers {
                    let _ = m.unmap(iova, len);
                }
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Tells every listener, then every mapper, that segment `idx` of `list` (`len` bytes) is
    /// about to be unmapped. Nobody can refuse; what fails is logged.
    pub(super) fn segment_removed(&self, list: &SegmentList, idx: usize, len: usize) {
        if !self.listeners.is_empty() {
            match shared_segment(list, idx) {
                Ok(seg) => self.listeners.iter().for_each(|(_, l)| l.segment_removed(&seg)),
                Err(e) => tracing::warn!("cannot describe the segment at {:#x}: {e}", list.addr(idx)),
            }
        }
        for (_, mapper) in &self.mappers {
            if let Err(e) = mapper.unmap(list.iova(idx), len) {
                tracing::warn!("DMA unmap of segment at {:#x} failed: {e}", list.addr(idx));
            }
        }
    }
}

impl Memory {
    /// Registers an IOMMU programmer: every mapped segment is mapped through it now, and every
    /// segment added or removed later is too. On failure nothing stays mapped through it.
    pub fn add_dma_mapper(&self, mapper: Arc<dyn DmaMapper>) -> Result<MapperId, MemError> {
        let mut st = self.lock();
        let mut done: Vec<(u64, usize)> = Vec::new();
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if !list.is_mapped(idx) {
                    continue;
                }
                let (va, iova) = (list.addr(idx), list.iova(idx));
                if let Err(source) = mapper.map(va, iova, cell.seg_size) {
                    for (iova, len) in done {
                        let _ = mapper.unmap(iova, len);
                    }
                    return Err(MemError::DmaMap { va, len: cell.seg_size, source });
                }
                done.push((iova, cell.seg_size));
            }
        }
        let registry = &mut st.registry;
        let id = registry.next_mapper;
        registry.next_mapper += 1;
        registry.mappers.push((id, mapper));
        Ok(MapperId(id))
    }

    /// Unregisters a mapper, unmapping every segment from it.
    pub fn remove_dma_mapper(&self, id: MapperId) {
        let mut st = self.lock();
        let Some(pos) = st.registry.mappers.iter().position(|(i, _)| *i == id.0) else { return };
        let (_, mapper) = st.registry.mappers.remove(pos);
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if list.is_mapped(idx) {
                    if let Err(e) = mapper.unmap(list.iova(idx), cell.seg_size) {
                        tracing::warn!("DMA unmap of segment at {:#x} failed: {e}", list.addr(idx));
                    }
                }
            }
        }
    }

    /// The mapped memory as regions another process can map (a vhost-user backend): one per run
    /// of segments that are neighbours both in memory and in one file, in address order. With
    /// `--single-file-segments` that is one region per socket's run of mapped segments; with a
    /// file per page it is one region per page.
    ///
    /// Fails for anonymous memory (`--no-huge`, `--in-memory`), which has no file to share.
    pub fn shared_regions(&self) -> Result<Vec<SharedRegion>, MemError> {
        self.check_shareable()?;
        let _st = self.lock();
        let mut set = RegionSet::new();
        for cell in &self.inner.lists {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..list.iovas.len() {
                if list.is_mapped(idx) {
                    let seg = shared_segment(&list, idx)?;
                    set.insert(&seg)
                        .map_err(|source| MemError::Os { what: "duplicating a hugepage file descriptor", source })?;
                }
            }
        }
        Ok(set.regions())
    }

    fn check_shareable(&self) -> Result<(), MemError> {
        match self.inner.unshareable {
            Some(why) => Err(MemError::NotShareable { why }),
            None => Ok(()),
        }
    }

    /// Registers a listener for the shareable memory: it is told of every segment mapped now
    /// (before this returns) and of every segment added or removed later, synchronously, with
    /// the memory's locks held (see [`MemoryListener`]). If it refuses a segment mapped now,
    /// it is told of the removal of those it took, and registering fails.
    ///
    /// Fails for anonymous memory (`--no-huge`, `--in-memory`).
    pub fn add_memory_listener(&self, listener: Arc<dyn MemoryListener>) -> Result<ListenerId, MemError> {
        self.check_shareable()?;
        let mut st = self.lock();
        let mut done: Vec<(usize, usize)> = Vec::new();
        let mut failure = None;
        'lists: for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..list.iovas.len() {
                if !list.is_mapped(idx) {
                    continue;
                }
                let outcome = shared_segment(&list, idx).and_then(|seg| {
                    listener.segment_added(&seg).map_err(|source| MemError::DmaMap { va: seg.va, len: seg.len, source })
                });
                match outcome {
                    Ok(()) => done.push((li, idx)),
                    Err(e) => {
                        failure = Some(e);
                        break 'lists;
                    }
                }
            }
        }
        if let Some(e) = failure {
            for (li, idx) in done {
                let list = self.inner.lists[li].list.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(seg) = shared_segment(&list, idx) {
                    listener.segment_removed(&seg);
                }
            }
            return Err(e);
        }
        let registry = &mut st.registry;
        let id = registry.next_listener;
        registry.next_listener += 1;
        registry.listeners.push((id, listener));
        Ok(ListenerId(id))
    }

    /// Unregisters a listener. It is not told of the segments still mapped.
    pub fn remove_memory_listener(&self, id: ListenerId) {
        let mut st = self.lock();
        st.registry.listeners.retain(|(i, _)| *i != id.0);
    }
}

/// Segment `idx` of `list` as a [`MemoryListener`] sees it.
fn shared_segment(list: &SegmentList, idx: usize) -> Result<SharedSegment<'_>, MemError> {
    let (fd, offset) =
        list.backing(idx).ok_or(MemError::NotShareable { why: "the segment is not mapped from a hugetlbfs file" })?;
    let file = FileId::of(fd).map_err(|source| MemError::Os { what: "fstat of a hugepage file", source })?;
    Ok(SharedSegment { va: list.addr(idx), len: list.seg_size, fd, offset, file })
}
