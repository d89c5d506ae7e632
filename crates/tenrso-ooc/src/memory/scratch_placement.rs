//! Where a plan's intermediate arrays go among the spill area's tiers,
//! decided before any I/O: [`place_scratch`].

use std::path::PathBuf;

use crate::core::{ByteSize, Error, Result};
use crate::memory::SpillDirSpec;
use crate::memory::tier::{describe_room, filesystem_free};

/// What one tier of the spill area could take when a plan is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRoom {
    /// The directory the user named.
    pub dir: PathBuf,
    /// Bytes it holds now (spill files, intermediates placed in it).
    pub used: u64,
    /// Its cap, if any.
    pub cap: Option<u64>,
    /// Bytes free on its file system (`None` when it cannot be asked).
    pub disk_free: Option<u64>,
}

impl TierRoom {
    /// The room of a tier not made yet: `spec`'s cap, nothing held, and the
    /// free bytes of the file system it will be on.
    pub fn of_spec(spec: &SpillDirSpec) -> Self {
        Self {
            dir: spec.path.clone(),
            used: 0,
            cap: spec.cap,
            disk_free: filesystem_free(&spec.path),
        }
    }

    /// Bytes it could take: what the cap leaves and what the file system
    /// has free, whichever is less.
    pub fn room(&self) -> u64 {
        let cap = self.cap.map_or(u64::MAX, |c| c.saturating_sub(self.used));
        cap.min(self.disk_free.unwrap_or(u64::MAX))
    }

    /// What it holds and has room for, in words.
    pub fn describe(&self) -> String {
        describe_room(&self.dir, self.used, self.cap, self.disk_free)
    }
}

/// An intermediate array a plan writes to the spill area: the most bytes it
/// may take as stored, and the first and last steps of the plan during
/// which it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchNeed {
    /// What it is (`einsum step 0 intermediate`).
    pub what: String,
    /// The most bytes it takes as stored.
    pub bytes: u64,
    /// The step that writes it.
    pub first_step: usize,
    /// The last step that reads it.
    pub last_step: usize,
}

/// An intermediate array placed in a tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchPlacement {
    /// What it is.
    pub what: String,
    /// The most bytes it takes as stored.
    pub bytes: u64,
    /// The tier's number, 0 for the first (fastest).
    pub tier: usize,
    /// The directory the user named for that tier.
    pub dir: PathBuf,
}

impl std::fmt::Display for ScratchPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (at most {}) in tier {}: {}",
            self.what,
            ByteSize(self.bytes),
            self.tier,
            self.dir.display()
        )
    }
}

/// Places `needs` (in the order they are written) in the first tier of
/// `rooms` with room for each, the room of an array coming back after its
/// last step — as the run will place them, given what the tiers hold now.
///
/// ```
/// use tenrso_ooc::memory::{ScratchNeed, TierRoom, place_scratch};
/// let tier = |dir: &str, cap| TierRoom { dir: dir.into(), used: 0, cap, disk_free: None };
/// let rooms = [tier("/fast", Some(8 << 20)), tier("/roomy", None)];
/// let need = |what: &str, mib: u64, first_step, last_step| ScratchNeed {
///     what: what.into(), bytes: mib << 20, first_step, last_step,
/// };
/// let placed = place_scratch(&[need("step 0", 32, 0, 1), need("step 1", 4, 1, 2)], &rooms)?;
/// assert_eq!((placed[0].tier, placed[1].tier), (1, 0));
/// let err = place_scratch(&[need("step 0", 32, 0, 1)], &rooms[..1]).unwrap_err();
/// assert!(err.to_string().contains("/fast holds 0 B of its 8.00 MiB cap"), "{err}");
/// # Ok::<(), tenrso_ooc::Error>(())
/// ```
///
/// # Errors
/// [`Error::TierFull`] for the first array no tier can hold, naming every
/// tier's cap and room at that point of the plan.
pub fn place_scratch(needs: &[ScratchNeed], rooms: &[TierRoom]) -> Result<Vec<ScratchPlacement>> {
    let mut rooms = rooms.to_vec();
    let mut placed: Vec<ScratchPlacement> = Vec::with_capacity(needs.len());
    let mut live: Vec<(usize, usize, u64)> = Vec::new(); // (last step, tier, bytes)
    for need in needs {
        // Arrays whose last reader ran before this one is written are gone.
        live.retain(|&(last, tier, bytes)| {
            let gone = last < need.first_step;
            if gone {
                rooms[tier].used = rooms[tier].used.saturating_sub(bytes);
            }
            !gone
        });
        let Some(tier) = rooms.iter().position(|r| r.room() >= need.bytes) else {
            return Err(Error::TierFull {
                what: need.what.clone(),
                bytes: need.bytes,
                tiers: describe_all(&rooms),
            });
        };
        rooms[tier].used += need.bytes;
        if let Some(free) = rooms[tier].disk_free.as_mut() {
            *free = free.saturating_sub(need.bytes);
        }
        live.push((need.last_step, tier, need.bytes));
        placed.push(ScratchPlacement {
            what: need.what.clone(),
            bytes: need.bytes,
            tier,
            dir: rooms[tier].dir.clone(),
        });
    }
    Ok(placed)
}

fn describe_all(rooms: &[TierRoom]) -> String {
    rooms
        .iter()
        .map(TierRoom::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The spill directories `specs` names, or the system temporary directory
/// when it names none.
pub fn effective_spill_dirs(specs: &[SpillDirSpec]) -> Vec<SpillDirSpec> {
    if specs.is_empty() {
        vec![SpillDirSpec {
            path: std::env::temp_dir(),
            cap: None,
        }]
    } else {
        specs.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(dir: &str, used: u64, cap: Option<u64>) -> TierRoom {
        TierRoom {
            dir: dir.into(),
            used,
            cap,
            disk_free: None,
        }
    }

    fn need(what: &str, bytes: u64, first_step: usize, last_step: usize) -> ScratchNeed {
        ScratchNeed {
            what: what.into(),
            bytes,
            first_step,
            last_step,
        }
    }

    #[test]
    fn room_comes_back_after_the_last_reader() {
        let rooms = [room("/a", 0, Some(100)), room("/b", 0, Some(100))];
        // 0 lives steps 0..1, 1 lives 1..2: both at step 1, so 1 goes to /b;
        // 2 is written at step 2, after 0 is gone: /a again.
        let placed = place_scratch(
            &[
                need("x", 60, 0, 1),
                need("y", 60, 1, 2),
                need("z", 60, 2, 3),
            ],
            &rooms,
        )
        .unwrap();
        let tiers: Vec<usize> = placed.iter().map(|p| p.tier).collect();
        assert_eq!(tiers, [0, 1, 0]);
    }

    #[test]
    fn what_a_tier_holds_and_its_file_system_count() {
        let mut fast = room("/a", 90, Some(100));
        assert_eq!(fast.room(), 10);
        fast.disk_free = Some(5);
        assert_eq!(fast.room(), 5);
        let err = place_scratch(&[need("step 0", 6, 0, 1)], &[fast]).unwrap_err();
        assert!(matches!(err, Error::TierFull { bytes: 6, .. }), "{err}");
        assert!(
            err.to_string().contains("its file system: 5 B free"),
            "{err}"
        );
    }

    #[test]
    fn no_dirs_means_the_temporary_directory() {
        let dirs = effective_spill_dirs(&[]);
        assert_eq!(dirs[0].path, std::env::temp_dir());
    }
}
