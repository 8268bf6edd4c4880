//! Idempotent producers' state of one partition: for each producer id, its
//! epoch and the sequence ranges and offsets of its last five batches, so a
//! retried batch gets its original offsets back instead of being written
//! twice, and a gap in sequences is refused.
//!
//! # Rules (Kafka's `ProducerStateManager` for client appends)
//!
//! * A batch with producer id −1 carries no producer state.
//! * A batch whose epoch equals the producer's and whose first and last
//!   sequence equal one of the cached batches' is a duplicate: nothing is
//!   appended and the cached offsets are returned.
//! * An epoch lower than the producer's is INVALID_PRODUCER_EPOCH.
//! * A higher epoch starts over: its first sequence must be 0.
//! * With the same epoch, the first sequence must follow the last one
//!   (`last + 1`, wrapping from `i32::MAX` to 0): otherwise
//!   OUT_OF_ORDER_SEQUENCE_NUMBER.
//! * A producer the partition does not know (new, or expired) may start at
//!   any sequence.
//!
//! A partition remembers at most [`MAX_PRODUCERS_PER_PARTITION`]
//! producers: clients can write with any producer id, so without a bound
//! random ids would grow this state (and its snapshots) without end. Past
//! the bound the least recently appending tenth is forgotten at once, as
//! if expired (`producer.id.expiration.ms`), with a log line; an active
//! producer is the last to go.
//!
//! # Snapshot file format
//!
//! `<offset>.snapshot` (20-digit zero-padded offset) in the partition's
//! directory holds the state of every producer as of that offset (the
//! batches below it); all integers big-endian:
//!
//! ```text
//! version         int16    1
//! crc             uint32   CRC-32C of every byte after this field
//! producer_count  int32
//! producer_count times:
//!   producer_id     int64
//!   epoch           int16
//!   last_append_ms  int64    broker time of the producer's last append
//!   batch_count     int8     1 to 5, oldest first
//!   batch_count times:
//!     first_sequence  int32
//!     last_sequence   int32
//!     first_offset    int64
//!     last_offset     int64
//!     timestamp       int64   the batch's max timestamp
//! ```
//!
//! Snapshots are written when a segment is rolled and when the log is
//! closed. On load the newest snapshot at or below the log end offset is
//! read (older ones are tried if it is corrupt) and the batch headers after
//! it are replayed, so the state survives restarts and crashes.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use strom_protocol::batch::BatchHeader;

use crate::durable_file::write_atomically;
use crate::error::{Result, StorageError};
use crate::segment::segment_file_stem;

/// Batches remembered per producer (Kafka's, and the producers' in-flight
/// limit).
pub const MAX_CACHED_BATCHES_PER_PRODUCER: usize = 5;
/// Extension of snapshot files.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snapshot";
/// Most producers one partition remembers (see the module docs); about
/// 250 bytes each.
pub const MAX_PRODUCERS_PER_PARTITION: usize = 20_000;
const SNAPSHOT_VERSION: i16 = 1;
/// Bytes of a snapshot's version and CRC.
const SNAPSHOT_HEADER_BYTES: usize = 6;

/// Where one batch of a producer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the first record.
    pub first_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
    /// Offset of the first record.
    pub first_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub timestamp: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Epoch of the batches below.
    pub epoch: i16,
    /// The last batches, oldest first, at most five.
    pub batches: VecDeque<BatchMetadata>,
    /// Broker time of the last append, for expiration.
    pub last_append_ms: i64,
}

/// What a client batch is, for its producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New: append it.
    Append,
    /// Already written: answer with these offsets.
    Duplicate(BatchMetadata),
}

/// `sequence + increment`, wrapping past `i32::MAX` to 0 as Kafka does.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if increment >= 0 && sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence.wrapping_add(increment)
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    /// No producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A producer's entry.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a client batch (offsets not yet assigned) against the
    /// producer's state.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck> {
        if header.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        let first = header.base_sequence;
        let last = increment_sequence(first, header.last_offset_delta);
        if header.producer_epoch == entry.epoch {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_sequence == first && b.last_sequence == last)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
        }
        if header.producer_epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if first != 0 {
                return Err(StorageError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: 0,
                    received: first,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        match entry.batches.back() {
            Some(b) if !in_sequence(b.last_sequence, first) => {
                Err(StorageError::OutOfOrderSequence {
                    producer_id: header.producer_id,
                    expected: increment_sequence(b.last_sequence, 1),
                    received: first,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (offsets assigned). Also used to replay
    /// the log on load.
    pub fn update(&mut self, header: &BatchHeader, append_ms: i64) {
        self.update_bounded(header, append_ms, MAX_PRODUCERS_PER_PARTITION)
    }

    /// [`Self::update`] with the producer bound given.
    fn update_bounded(&mut self, header: &BatchHeader, append_ms: i64, max_producers: usize) {
        if header.producer_id < 0 {
            return;
        }
        if self.producers.len() >= max_producers
            && !self.producers.contains_key(&header.producer_id)
        {
            self.forget_least_recent(max_producers);
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: append_ms,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: increment_sequence(header.base_sequence, header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp: header.max_timestamp,
        });
        while entry.batches.len() > MAX_CACHED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.last_append_ms = entry.last_append_ms.max(append_ms);
    }

    /// Forgets the least recently appending tenth of `max_producers` (at
    /// least one), so that a new producer fits.
    fn forget_least_recent(&mut self, max_producers: usize) {
        let keep = max_producers.saturating_sub((max_producers / 10).max(1));
        let mut by_age: Vec<(i64, i64)> = self
            .producers
            .iter()
            .map(|(id, e)| (e.last_append_ms, *id))
            .collect();
        let forget = by_age.len().saturating_sub(keep);
        if forget == 0 {
            return;
        }
        by_age.select_nth_unstable(forget - 1);
        for (_, id) in by_age.iter().take(forget) {
            self.producers.remove(id);
        }
        tracing::warn!(
            forgotten = forget,
            max_producers,
            "a partition's producer state reached its bound: the least recently appending producers are forgotten, as if expired"
        );
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`).
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_append_ms) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets producers whose every remembered batch is below `offset` (the
    /// log start offset after retention): nothing of theirs is left to
    /// deduplicate against.
    pub fn evict_below(&mut self, offset: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= offset));
        before - self.producers.len()
    }

    /// Encodes a snapshot (see the module docs).
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.producers.len() as i32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(e) = self.producers.get(id) else {
                continue;
            };
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_append_ms.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_sequence.to_be_bytes());
                body.extend_from_slice(&b.last_sequence.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is corrupt or of another version.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.i16()? != SNAPSHOT_VERSION {
            return None;
        }
        let crc = r.i32()? as u32;
        let body = bytes.get(SNAPSHOT_HEADER_BYTES..)?;
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let count = usize::try_from(r.i32()?).ok()?;
        let mut producers = HashMap::with_capacity(count.min(body.len() / 19));
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_append_ms = r.i64()?;
            let n = usize::from(r.u8()?);
            if n == 0 || n > MAX_CACHED_BATCHES_PER_PRODUCER {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_sequence: r.i32()?,
                    last_sequence: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_append_ms,
                },
            );
        }
        (r.pos == bytes.len()).then_some(Self { producers })
    }

    /// Writes `<offset>.snapshot` into `dir` atomically.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<()> {
        write_atomically(&snapshot_path(dir, offset), &self.encode_snapshot())
    }

    /// Loads the newest readable snapshot at or below `max_offset`; returns
    /// the state and its offset (empty state at offset 0 when none).
    /// Snapshots above `max_offset` (left by a truncated log) are deleted.
    pub fn load_latest(dir: &Path, max_offset: i64) -> (Self, i64) {
        let mut offsets = list_snapshots(dir);
        offsets.sort_unstable();
        for offset in offsets.iter().filter(|o| **o > max_offset) {
            let _ = std::fs::remove_file(snapshot_path(dir, *offset));
        }
        for offset in offsets.iter().rev().filter(|o| **o <= max_offset) {
            let path = snapshot_path(dir, *offset);
            match std::fs::read(&path)
                .ok()
                .and_then(|b| Self::decode_snapshot(&b))
            {
                Some(state) => return (state, *offset),
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a corrupt producer state snapshot");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        (Self::new(), 0)
    }

    /// Deletes snapshots below `offset`, keeping the newest of them.
    pub fn delete_snapshots_below(dir: &Path, offset: i64) {
        let mut old: Vec<i64> = list_snapshots(dir)
            .into_iter()
            .filter(|o| *o < offset)
            .collect();
        old.sort_unstable();
        old.pop();
        for o in old {
            let _ = std::fs::remove_file(snapshot_path(dir, o));
        }
    }
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!(
        "{}{SNAPSHOT_FILE_SUFFIX}",
        segment_file_stem(offset)
    ))
}

fn list_snapshots(dir: &Path) -> Vec<i64> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(SNAPSHOT_FILE_SUFFIX)?
                        .parse::<i64>()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let out: [u8; N] = self.bytes.get(self.pos..self.pos + N)?.try_into().ok()?;
        self.pos += N;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_producer_ids_stay_within_the_bound_and_the_active_producer_is_kept() {
        let mut state = ProducerStateManager::new();
        let max = 100;
        // One producer keeps appending while 1,000 one-off ids arrive.
        let mut active_seq = 0;
        for i in 0..1_000i64 {
            state.update_bounded(&header(1_000_000 + i, 0, 0, 1, i), i, max);
            state.update_bounded(&header(7, 0, active_seq, 1, i), i, max);
            active_seq += 1;
            assert!(state.len() <= max, "{} producers", state.len());
        }
        let active = state.entry(7).expect("the active producer is remembered");
        assert_eq!(active.batches.back().unwrap().last_sequence, active_seq - 1);
        // The most recent one-off ids are remembered, the oldest forgotten.
        assert!(state.entry(1_000_999).is_some());
        assert!(state.entry(1_000_000).is_none());
        // Snapshots stay as bounded as the state.
        let decoded = ProducerStateManager::decode_snapshot(&state.encode_snapshot()).unwrap();
        assert_eq!(decoded.len(), state.len());
    }

    fn header(pid: i64, epoch: i16, first_seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: first_seq,
            records_count: records,
        }
    }

    #[test]
    fn kafka_sequence_rules() {
        let mut s = ProducerStateManager::new();
        // Unknown producers may start anywhere.
        assert_eq!(
            s.check(&header(7, 0, 42, 3, 0)).unwrap(),
            SequenceCheck::Append
        );
        s.update(&header(7, 0, 0, 3, 0), 0);
        s.update(&header(7, 0, 3, 2, 3), 0);
        // A retry of either batch is a duplicate with its original offsets.
        match s.check(&header(7, 0, 0, 3, 0)).unwrap() {
            SequenceCheck::Duplicate(b) => assert_eq!((b.first_offset, b.last_offset), (0, 2)),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(s.check(&header(7, 0, 3, 2, 0)).unwrap(), SequenceCheck::Duplicate(b) if b.first_offset == 3)
        );
        // The next sequence is fine; a gap or an overlap is not.
        assert_eq!(
            s.check(&header(7, 0, 5, 1, 0)).unwrap(),
            SequenceCheck::Append
        );
        assert!(matches!(
            s.check(&header(7, 0, 6, 1, 0)),
            Err(StorageError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert!(matches!(
            s.check(&header(7, 0, 4, 1, 0)),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        // Older epochs are fenced; a newer epoch must start at 0.
        assert!(matches!(
            s.check(&header(7, -1, 5, 1, 0)),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&header(7, 1, 5, 1, 0)),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            s.check(&header(7, 1, 0, 1, 0)).unwrap(),
            SequenceCheck::Append
        );
        // Non-idempotent batches carry no state.
        assert_eq!(
            s.check(&header(-1, -1, -1, 5, 0)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerStateManager::new();
        s.update(&header(1, 0, i32::MAX - 1, 2, 0), 0);
        assert_eq!(
            s.check(&header(1, 0, 0, 1, 2)).unwrap(),
            SequenceCheck::Append
        );
    }

    #[test]
    fn only_five_batches_are_remembered_and_idle_producers_expire() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            s.update(&header(1, 0, i, 1, i64::from(i)), 1000);
        }
        let e = s.entry(1).unwrap();
        assert_eq!(e.batches.len(), 5);
        assert_eq!(e.batches.front().unwrap().first_sequence, 2);
        assert_eq!(s.remove_expired(1500, 1000), 0);
        assert_eq!(s.remove_expired(2000, 1000), 1);
        assert!(s.is_empty());
    }

    proptest! {
        /// Model: a producer sends batches in order, sometimes retrying one
        /// of its last five; the state accepts exactly the new ones and
        /// reports retries with their original offsets.
        #[test]
        fn retries_are_recognised(sizes in proptest::collection::vec(1i32..50, 1..40), retries in proptest::collection::vec(0usize..5, 0..40)) {
            let mut s = ProducerStateManager::new();
            let mut sent: Vec<(i32, i32, i64)> = Vec::new();
            let (mut seq, mut offset) = (0i32, 0i64);
            for (i, n) in sizes.iter().enumerate() {
                let h = header(9, 0, seq, *n, 0);
                prop_assert_eq!(s.check(&h).unwrap(), SequenceCheck::Append);
                s.update(&header(9, 0, seq, *n, offset), 0);
                sent.push((seq, *n, offset));
                seq += n;
                offset += i64::from(*n);
                if let Some(back) = retries.get(i) {
                    if *back < sent.len() {
                        let (rs, rn, ro) = sent[sent.len() - 1 - back];
                        match s.check(&header(9, 0, rs, rn, 0)).unwrap() {
                            SequenceCheck::Duplicate(b) => prop_assert_eq!(b.first_offset, ro),
                            SequenceCheck::Append => prop_assert!(false, "retry accepted as new"),
                        }
                    }
                }
            }
            let bytes = s.encode_snapshot();
            prop_assert_eq!(ProducerStateManager::decode_snapshot(&bytes), Some(s.clone()));
        }
    }

    #[test]
    fn snapshot_files_round_trip_and_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::new();
        s.update(&header(3, 2, 10, 5, 100), 77);
        s.write_snapshot(dir.path(), 105).unwrap();
        s.update(&header(3, 2, 15, 5, 105), 78);
        s.write_snapshot(dir.path(), 110).unwrap();
        let (loaded, at) = ProducerStateManager::load_latest(dir.path(), 200);
        assert_eq!((loaded, at), (s.clone(), 110));
        // A snapshot past the log end (after truncation) is dropped.
        let (_, at) = ProducerStateManager::load_latest(dir.path(), 107);
        assert_eq!(at, 105);
        assert!(!snapshot_path(dir.path(), 110).exists());
        // Every truncation and bit flip is detected.
        let bytes = s.encode_snapshot();
        for len in 0..bytes.len() {
            assert!(
                ProducerStateManager::decode_snapshot(&bytes[..len]).is_none(),
                "len {len}"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(
                ProducerStateManager::decode_snapshot(&b).is_none(),
                "flip at {i}"
            );
        }
    }
}
