//! Hugepages for a forwarding bench: enough free 2 MiB pages (reserving the difference) and a
//! hugetlbfs to find them on (mounting one if none is), both given back when the bench ends,
//! whichever way it ends.

use std::fs;
use std::path::PathBuf;

use burst_mem::hugepage::{self, PageSize, Reservation, SysRoot};

use super::cargo::target_dir;

/// Free 2 MiB hugepages and a hugetlbfs to find them on, for as long as this lives.
pub(super) struct Hugepages {
    pub(super) dir: PathBuf,
    /// We mounted `dir`: unmount it at the end.
    mounted: bool,
    /// Pages added to the pool, given back in `drop` after the unmount (which takes any files
    /// left on our own mount with it).
    reservation: Option<Reservation>,
    nr_before: u64,
}

impl Hugepages {
    /// Makes sure `free_wanted` 2 MiB pages are free, reserving the difference, and that a
    /// hugetlbfs for them is mounted (mounting one under target/bench if none is).
    pub(super) fn prepare(free_wanted: u64) -> Result<Self, String> {
        let root = SysRoot::host();
        let size = PageSize::SIZE_2M;
        let counts = root.counts(size, None).map_err(|e| e.to_string())?;
        let reservation = if counts.free < free_wanted {
            let add = free_wanted - counts.free;
            println!(
                "bench: {} of {} 2M hugepages are free; reserving {add} more (given back at the end)",
                counts.free, counts.total
            );
            Some(Reservation::new(&root, size, None, add).map_err(|e| format!("reserving hugepages: {e}"))?)
        } else {
            println!("bench: {} of {} 2M hugepages are free: enough", counts.free, counts.total);
            None
        };
        let (dir, mounted) = match root.mount_for(size) {
            Ok(m) => (m.path, false),
            Err(_) => {
                let dir = target_dir().join("bench").join("hugepages-2M");
                hugepage::mount(&dir, size).map_err(|e| format!("mounting hugetlbfs: {e}"))?;
                println!("bench: no hugetlbfs for 2M pages was mounted; mounted one at {}", dir.display());
                (dir, true)
            }
        };
        Ok(Hugepages { dir, mounted, reservation, nr_before: counts.total })
    }

    /// Removes the hugepage files a run left behind (a program killed before its cleanup).
    pub(super) fn remove_files(&self, prefix: &str) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                println!("bench: removing the leftover hugepage file {}", e.path().display());
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = hugepage::unmount(&self.dir) {
                eprintln!("bench: could not unmount {}: {e}", self.dir.display());
            }
        }
        if let Some(r) = self.reservation.take() {
            if let Err(e) = r.release() {
                eprintln!("bench: could not give the reserved hugepages back: {e}");
            }
        }
        match SysRoot::host().counts(PageSize::SIZE_2M, None) {
            Ok(c) if c.total == self.nr_before => println!("bench: 2M hugepages back to {}", c.total),
            Ok(c) => eprintln!("bench: 2M hugepages are {} now, were {} before", c.total, self.nr_before),
            Err(e) => eprintln!("bench: reading the hugepage counts: {e}"),
        }
    }
}
