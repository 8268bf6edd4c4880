//! The leader epoch cache of one partition: for each leader epoch, the
//! first offset written in it. Followers use it to find where their log
//! diverges from a new leader's (OffsetForLeaderEpoch) and truncate there;
//! leaders use it to answer them.
//!
//! # File format (Kafka's `leader-epoch-checkpoint`)
//!
//! A text file in the partition directory:
//!
//! ```text
//! 0                       <- format version
//! 3                       <- number of entries
//! 0 0                     <- leader epoch, start offset (space separated)
//! 2 1500
//! 5 1710
//! ```
//!
//! Entries are in increasing order of both epoch and start offset. It is
//! rewritten whole on every change (epochs change rarely), atomically
//! ([`crate::durable_file::write_atomically`]). A missing file is an empty
//! cache; a file that does not parse, declares another count than it
//! holds, or whose entries are not strictly increasing is corrupt
//! ([`StorageError::CorruptFile`]), and the caller rebuilds the cache from
//! the batches' leader epochs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::checkpoint::read_versioned_entries;
use crate::durable_file::write_atomically;
use crate::error::{Result, StorageError};

/// The file name in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

const FORMAT_VERSION: i32 = 0;

/// No epoch (OffsetForLeaderEpoch's answer for an epoch it cannot place).
pub const UNDEFINED_EPOCH: i32 = -1;
/// No offset, likewise.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Leader epoch → the first offset written in it, kept in a file.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    epochs: BTreeMap<i32, i64>,
}

impl LeaderEpochCache {
    /// Loads the cache of the partition in `dir` (empty when it has no
    /// file yet).
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let epochs = read(&path)?;
        Ok(Self { path, epochs })
    }

    /// An empty cache for `dir` that has not read its file (a log that
    /// failed to load and accepts no writes).
    pub(crate) fn unread(dir: &Path) -> Self {
        Self {
            path: dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            epochs: BTreeMap::new(),
        }
    }

    /// A cache for `dir` holding `entries`, written to its file: the cache
    /// rebuilt from the log when the file was missing or corrupt.
    pub fn rebuild(dir: &Path, entries: impl IntoIterator<Item = (i32, i64)>) -> Result<Self> {
        let mut cache = Self {
            path: dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            epochs: BTreeMap::new(),
        };
        for (epoch, start_offset) in entries {
            cache.insert(epoch, start_offset);
        }
        cache.flush()?;
        Ok(cache)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<(i32, i64)> {
        self.epochs.iter().map(|(e, o)| (*e, *o)).collect()
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.keys().next_back().copied()
    }

    /// Records that `epoch` starts at `start_offset` (a batch of a new
    /// epoch was appended). Entries that it contradicts — an epoch as new
    /// or newer, or one starting at or after it — are dropped first, as
    /// Kafka does. Returns whether anything changed (and was written).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if !self.assign_in_memory(epoch, start_offset) {
            return Ok(false);
        }
        self.flush()?;
        Ok(true)
    }

    /// [`LeaderEpochCache::assign`] for each of `entries` in order, with
    /// one write at the end, and none when the cache ends as it began (the
    /// epochs of recovered batches it already knew): loading a log on a
    /// full disk must not need to write.
    pub fn assign_all(&mut self, entries: impl IntoIterator<Item = (i32, i64)>) -> Result<()> {
        let before = self.epochs.clone();
        for (epoch, start_offset) in entries {
            self.assign_in_memory(epoch, start_offset);
        }
        if self.epochs != before {
            self.flush()?;
        }
        Ok(())
    }

    fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .epochs
            .iter()
            .next_back()
            .is_none_or(|(e, o)| *e != epoch || start_offset < *o);
        if needed {
            self.insert(epoch, start_offset);
        }
        needed
    }

    fn insert(&mut self, epoch: i32, start_offset: i64) {
        self.epochs.retain(|e, o| *e < epoch && *o < start_offset);
        self.epochs.insert(epoch, start_offset);
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `requested` that
    /// this log knows, with the offset where the epoch after it starts (the
    /// log end offset when it is the newest epoch). An epoch newer than
    /// every known one is undefined; an epoch older than every known one
    /// ends where the oldest known starts.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some((_, higher_start)) = self.epochs.range(requested.saturating_add(1)..).next()
        else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.epochs.range(..=requested).next_back() {
            Some((floor, _)) => (*floor, *higher_start),
            None => (requested, *higher_start),
        }
    }

    /// The epoch that `offset` was written in, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs
            .iter()
            .rev()
            .find(|(_, start)| **start <= offset)
            .map(|(e, _)| *e)
    }

    /// The log was truncated to end at `end_offset`: epochs starting at or
    /// after it go.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let before = self.epochs.len();
        self.epochs.retain(|_, start| *start < end_offset);
        if self.epochs.len() != before {
            self.flush()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: epochs that began before it
    /// go, except the one it falls in, which now starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let covering = self
            .epochs
            .iter()
            .rev()
            .find(|(_, start)| **start <= start_offset)
            .map(|(e, s)| (*e, *s));
        let Some((epoch, start)) = covering else {
            return Ok(());
        };
        let before = self.epochs.len();
        self.epochs.retain(|e, _| *e >= epoch);
        if start == start_offset && self.epochs.len() == before {
            return Ok(());
        }
        self.epochs.insert(epoch, start_offset);
        self.flush()
    }

    /// Removes every entry (the log was emptied).
    pub fn clear(&mut self) -> Result<()> {
        if self.epochs.is_empty() {
            return Ok(());
        }
        self.epochs.clear();
        self.flush()
    }

    fn flush(&self) -> Result<()> {
        let mut text = format!("{FORMAT_VERSION}\n{}\n", self.epochs.len());
        for (epoch, start) in &self.epochs {
            let _ = writeln!(text, "{epoch} {start}");
        }
        write_atomically(&self.path, text.as_bytes())
    }
}

fn read(path: &Path) -> Result<BTreeMap<i32, i64>> {
    let corrupt = |reason: String| StorageError::CorruptFile {
        path: path.to_path_buf(),
        reason,
    };
    let lines = read_versioned_entries(path, FORMAT_VERSION)?;
    let mut epochs = BTreeMap::new();
    let mut last: Option<(i32, i64)> = None;
    for (i, line) in lines.iter().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(corrupt(format!(
                "entry {i} is not 'epoch offset': {line:?}"
            )));
        };
        let (Ok(epoch), Ok(start)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
            return Err(corrupt(format!("entry {i} does not parse: {line:?}")));
        };
        if epoch < 0 || start < 0 || last.is_some_and(|(e, s)| epoch <= e || start < s) {
            return Err(corrupt(format!("entry {i} is out of order: {line:?}")));
        }
        last = Some((epoch, start));
        epochs.insert(epoch, start);
    }
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let c = LeaderEpochCache::rebuild(dir.path(), entries.iter().copied()).unwrap();
        (dir, c)
    }

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let (dir, mut c) = cache(&[]);
        assert!(c.assign(0, 0).unwrap());
        assert!(
            !c.assign(0, 5).unwrap(),
            "same epoch, later offset: no change"
        );
        assert!(c.assign(2, 10).unwrap());
        assert!(c.assign(3, 20).unwrap());
        assert_eq!(c.entries(), vec![(0, 0), (2, 10), (3, 20)]);
        // A new epoch starting below existing entries drops what it
        // contradicts (a follower that truncated and got a new leader).
        assert!(c.assign(4, 15).unwrap());
        assert_eq!(c.entries(), vec![(0, 0), (2, 10), (4, 15)]);
        // The same epoch at an earlier offset moves its start back.
        assert!(c.assign(4, 12).unwrap());
        assert_eq!(c.entries(), vec![(0, 0), (2, 10), (4, 12)]);
        assert!(!c.assign(-1, 3).unwrap());
        // It is on disk.
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), c.entries());
        assert_eq!(reloaded.latest_epoch(), Some(4));
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_dir, c) = cache(&[(1, 0), (3, 100), (6, 250)]);
        // The newest epoch ends at the log end.
        assert_eq!(c.end_offset_for(6, 300), (6, 300));
        // A known older epoch ends where the next starts.
        assert_eq!(c.end_offset_for(3, 300), (3, 250));
        // An unknown epoch between known ones: the one below it.
        assert_eq!(c.end_offset_for(4, 300), (3, 250));
        assert_eq!(c.end_offset_for(2, 300), (1, 100));
        // Older than all: ends where the oldest starts.
        assert_eq!(c.end_offset_for(0, 300), (0, 0));
        // Newer than all, or undefined.
        assert_eq!(
            c.end_offset_for(7, 300),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            c.end_offset_for(UNDEFINED_EPOCH, 300),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        let (_dir, empty) = cache(&[]);
        assert_eq!(
            empty.end_offset_for(0, 0),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(c.epoch_for_offset(120), Some(3));
        assert_eq!(c.epoch_for_offset(0), Some(1));
    }

    #[test]
    fn truncation_from_either_end() {
        let (dir, mut c) = cache(&[(1, 0), (3, 100), (6, 250)]);
        c.truncate_from_end(250).unwrap();
        assert_eq!(c.entries(), vec![(1, 0), (3, 100)]);
        c.truncate_from_end(400).unwrap();
        assert_eq!(c.entries(), vec![(1, 0), (3, 100)]);
        c.truncate_from_start(150).unwrap();
        assert_eq!(c.entries(), vec![(3, 150)]);
        c.truncate_from_start(10).unwrap();
        assert_eq!(c.entries(), vec![(3, 150)]);
        assert_eq!(
            LeaderEpochCache::load(dir.path()).unwrap().entries(),
            vec![(3, 150)]
        );
        c.clear().unwrap();
        assert!(LeaderEpochCache::load(dir.path())
            .unwrap()
            .entries()
            .is_empty());
    }

    #[test]
    fn corrupt_and_truncated_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        let good = "0\n2\n1 0\n3 100\n";
        std::fs::write(&path, good).unwrap();
        assert_eq!(
            LeaderEpochCache::load(dir.path()).unwrap().entries(),
            vec![(1, 0), (3, 100)]
        );
        // Every proper prefix of the file (a torn write) is refused, except
        // where it still reads as a whole file.
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            let r = LeaderEpochCache::load(dir.path());
            let whole = ["0\n2\n1 0\n3 100", "0\n2\n1 0\n3 10", "0\n2\n1 0\n3 1"];
            if whole.contains(&&good[..cut]) {
                continue;
            }
            assert!(
                matches!(r, Err(StorageError::CorruptFile { .. })),
                "prefix {:?} gave {r:?}",
                &good[..cut]
            );
        }
        for bad in [
            "1\n0\n",
            "0\nx\n",
            "0\n1\n1\n",
            "0\n1\n1 0 7\n",
            "0\n1\na b\n",
            "0\n2\n3 100\n1 0\n",
            "0\n2\n1 5\n2 4\n",
            "0\n1\n-1 0\n",
            "0\n3\n1 0\n2 5\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    LeaderEpochCache::load(dir.path()),
                    Err(StorageError::CorruptFile { .. })
                ),
                "{bad:?}"
            );
        }
        // Missing: empty.
        std::fs::remove_file(&path).unwrap();
        assert!(LeaderEpochCache::load(dir.path())
            .unwrap()
            .entries()
            .is_empty());
    }
}
