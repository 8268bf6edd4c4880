//! The set of partition logs across `log.dirs`: locking and identifying the
//! directories, loading (and recovering) logs at start-up, creating and
//! deleting them, and the periodic work (retention, flush, checkpoints, the
//! clean-shutdown marker).
//!
//! # Files in each log directory
//!
//! * `.lock`: held with an exclusive `flock` while the broker runs.
//! * `meta.properties`: see [`crate::meta_properties`].
//! * `.kafka_cleanshutdown`: present only between a clean shutdown and the
//!   next start-up; contains `{"version":0,"brokerEpoch":-1}`. Without it, logs
//!   are recovered from their recovery points.
//! * the three offset checkpoints of [`crate::checkpoint`]. A log with no
//!   high watermark entry (the file is missing or unreadable) starts from
//!   its log start offset, never its log end offset.
//! * `<topic>-<partition>/`: one partition log each ([`crate::log`]).
//! * `<topic>-<partition>.<id>-delete/`: a deleted log awaiting removal.
//! * `<topic>-<partition>.<id>-stray/`: a log the metadata did not know at
//!   start-up, set aside (never deleted automatically).
//! * `__cluster_metadata-0/`: the metadata log, owned by the controller.
//!
//! # I/O errors
//!
//! A log that fails to load (an I/O error, a full disk during recovery)
//! takes only its own partition offline: it is kept as a log that refuses
//! reads and writes with KAFKA_STORAGE_ERROR ([`Log::failed_to_load`]),
//! its files untouched and its directory never mistaken for a stray, while
//! the broker serves every other partition; the next start-up tries again.
//! A whole directory that fails (it cannot be created, locked, read or
//! listed: an I/O error) goes offline with every partition in it, as
//! Kafka's failed log directories do: it is left alone, new logs go to the
//! other directories, and each partition the metadata places on this
//! broker whose log was not found elsewhere is held as an offline log
//! (KAFKA_STORAGE_ERROR), never re-created empty, since its data may be in
//! that directory (the broker reports them, and the controller moves their
//! leadership away). The first directory holds the metadata log, so its
//! failure, and a directory of another node or cluster or locked by
//! another process, still stop start-up. Shutdown closes every log and checkpoints
//! every directory even after an error, and writes the clean-shutdown
//! marker only in the directories where all of that succeeded, so logs
//! that went offline, or failed to close, are recovered next time.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use strom_config::TopicConfig;
use uuid::Uuid;

use crate::checkpoint::{
    read_checkpoint, write_checkpoint, HIGH_WATERMARK_CHECKPOINT_FILE,
    LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
};
use crate::durable_file::{create_dir_all_durably, sync_dir, write_atomically};
use crate::error::{Result, StorageError};
use crate::log::{read_partition_metadata, LoadOptions, LoadReport, Log};
use crate::meta_properties::MetaProperties;
use crate::TopicPartition;

/// Marker of a clean shutdown, as Kafka names it.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Lock file held while the broker runs.
pub const LOCK_FILE: &str = ".lock";
/// Directory name of the metadata log, which the log manager leaves alone.
pub const METADATA_LOG_DIR_NAME: &str = "__cluster_metadata-0";
/// Suffix of deleted log directories.
pub const DELETE_DIR_SUFFIX: &str = "-delete";
/// Suffix of log directories set aside at start-up because the metadata
/// does not know them (or their `partition.metadata` is unreadable): kept
/// for an operator to inspect, never deleted automatically.
pub const STRAY_DIR_SUFFIX: &str = "-stray";

/// An opened log directory: its `.lock` stays locked as long as this
/// lives.
#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    _lock: File,
}

/// Opens one log directory: creates and locks it, checks or writes its
/// `meta.properties`, clears temporary files; with whether it holds logs
/// without a clean-shutdown marker.
fn open_dir(path: &Path, node_id: i32, cluster_id: &str) -> Result<(LogDir, bool)> {
    create_dir_all_durably(path)?;
    let lock_path = path.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(StorageError::io("open lock file", &lock_path))?;
    lock.try_lock().map_err(|_| StorageError::CorruptFile {
        path: path.to_path_buf(),
        reason: "another process holds this log directory's lock".into(),
    })?;
    match MetaProperties::read(path)? {
        Some(m) if m.node_id != node_id => {
            return Err(StorageError::CorruptFile {
                path: path.to_path_buf(),
                reason: format!("log directory belongs to node.id={}, not {node_id}", m.node_id),
            })
        }
        Some(m) if m.cluster_id != cluster_id => {
            return Err(StorageError::CorruptFile {
                path: path.to_path_buf(),
                reason: format!(
                    "log directory belongs to cluster {}, not {cluster_id}; refusing to mix clusters' data",
                    m.cluster_id
                ),
            })
        }
        Some(_) => {}
        None => MetaProperties {
            node_id,
            cluster_id: cluster_id.to_string(),
            directory_id: strom_protocol::uuid_text::uuid_to_base64(&Uuid::new_v4()),
        }
        .write(path)?,
    }
    // Temporary files of writes a crash interrupted.
    for entry in fs::read_dir(path)
        .map_err(StorageError::io("list log directory", path))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    let marker = path.join(CLEAN_SHUTDOWN_FILE);
    let has_logs = fs::read_dir(path)
        .map_err(StorageError::io("list log directory", path))?
        .flatten()
        .any(|e| {
            e.path().is_dir() && parse_log_dir_name(&e.file_name().to_string_lossy()).is_some()
        });
    let unclean = has_logs && !marker.exists();
    Ok((
        LogDir {
            path: path.to_path_buf(),
            _lock: lock,
        },
        unclean,
    ))
}

/// What start-up loading did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Logs loaded.
    pub logs: usize,
    /// Logs set aside as `-stray` because the metadata does not know them
    /// (their topic was deleted while this broker was down) or their topic
    /// id could not be read.
    pub stray_logs: usize,
    /// Logs that failed to load: they stay offline (KAFKA_STORAGE_ERROR)
    /// until a restart loads them.
    pub offline_logs: usize,
    /// Totals over all loaded logs.
    pub report: LoadReport,
}

/// All partition logs of this broker.
#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<LogDir>,
    /// Directories that failed: at start-up, or when they could not be
    /// listed while loading.
    offline_dirs: RwLock<Vec<PathBuf>>,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    had_clean_shutdown: bool,
    /// Serialises checkpoint writers (the periodic task and shutdown).
    checkpoint_lock: parking_lot::Mutex<()>,
}

/// Parses a log directory name `<topic>-<partition>`.
pub fn parse_log_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

/// The cluster id recorded in any of `dirs`, if one has `meta.properties`.
pub fn discover_cluster_id(dirs: &[PathBuf]) -> Result<Option<String>> {
    for d in dirs {
        if let Some(m) = MetaProperties::read(d)? {
            return Ok(Some(m.cluster_id));
        }
    }
    Ok(None)
}

/// What formatting did to each directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formatted {
    /// `meta.properties` was written.
    Formatted(PathBuf),
    /// The directory already belonged to this node and cluster.
    AlreadyFormatted(PathBuf),
}

/// Prepares log directories for a node of a cluster, as
/// `kafka-storage format` does: creates them and writes `meta.properties`
/// with the cluster id. A directory already formatted for the same node
/// and cluster is left alone when `ignore_formatted`, and is an error
/// otherwise; one formatted for another node or cluster is always an
/// error.
pub fn format_log_dirs(
    dirs: &[PathBuf],
    node_id: i32,
    cluster_id: &str,
    ignore_formatted: bool,
) -> Result<Vec<Formatted>> {
    let mut out = Vec::new();
    for path in dirs {
        create_dir_all_durably(path)?;
        match MetaProperties::read(path)? {
            Some(m) if m.node_id == node_id && m.cluster_id == cluster_id && ignore_formatted => {
                out.push(Formatted::AlreadyFormatted(path.clone()));
            }
            Some(m) => {
                return Err(StorageError::CorruptFile {
                    path: path.clone(),
                    reason: format!(
                        "already formatted (node.id={}, cluster id {})",
                        m.node_id, m.cluster_id
                    ),
                })
            }
            None => {
                MetaProperties {
                    node_id,
                    cluster_id: cluster_id.to_string(),
                    directory_id: strom_protocol::uuid_text::uuid_to_base64(&Uuid::new_v4()),
                }
                .write(path)?;
                out.push(Formatted::Formatted(path.clone()));
            }
        }
    }
    Ok(out)
}

impl LogManager {
    /// Creates and locks the log directories and checks (or writes) their
    /// `meta.properties`. Fails if another process holds a directory or a
    /// directory belongs to another node or cluster.
    pub fn open(dirs: &[PathBuf], node_id: i32, cluster_id: &str) -> Result<Self> {
        let mut opened = Vec::new();
        let mut offline = Vec::new();
        let mut clean = true;
        for (i, path) in dirs.iter().enumerate() {
            match open_dir(path, node_id, cluster_id) {
                Ok((dir, unclean)) => {
                    clean &= !unclean;
                    opened.push(dir);
                }
                // An I/O error in a directory other than the metadata
                // log's: that directory goes offline, the broker goes on.
                Err(e @ StorageError::Io { .. }) if i > 0 => {
                    tracing::error!(dir = %path.display(), error = %e, "log directory failed: it is offline with all its partitions (KAFKA_STORAGE_ERROR) until a restart finds it healthy");
                    offline.push(path.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            dirs: opened,
            offline_dirs: RwLock::new(offline),
            logs: RwLock::new(HashMap::new()),
            had_clean_shutdown: clean,
            checkpoint_lock: parking_lot::Mutex::new(()),
        })
    }

    /// The log directories that failed (they hold no loaded log).
    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        self.offline_dirs.read().clone()
    }

    /// The directories in use: opened and not failed since.
    fn online_dirs(&self) -> impl Iterator<Item = &LogDir> {
        let offline = self.offline_dirs();
        self.dirs.iter().filter(move |d| !offline.contains(&d.path))
    }

    /// Whether the previous run ended with a clean shutdown.
    pub fn had_clean_shutdown(&self) -> bool {
        self.had_clean_shutdown
    }

    /// The first log directory (home of the metadata log).
    pub fn first_dir(&self) -> &Path {
        self.dirs
            .first()
            .map_or(Path::new("."), |d| d.path.as_path())
    }

    /// Loads every partition log. `config_for` gets the topic id recorded
    /// in the log (`None` when `partition.metadata` is missing) and returns
    /// the topic's config and id when the metadata hosts this partition
    /// here under that id (or any id, for a log without one), or `None` for
    /// a stray log, which is set aside as `-stray`. Removes the
    /// clean-shutdown markers once loading is done.
    pub fn load_logs(
        &self,
        now_ms: i64,
        config_for: impl Fn(&TopicPartition, Option<Uuid>) -> Option<(Arc<TopicConfig>, Uuid)>,
    ) -> Result<LoadSummary> {
        let mut summary = LoadSummary::default();
        for dir in &self.dirs {
            let recovery = read_checkpoint(&dir.path.join(RECOVERY_POINT_CHECKPOINT_FILE)).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable recovery point checkpoint; logs are recovered from the start");
                HashMap::new()
            });
            let starts = read_checkpoint(&dir.path.join(LOG_START_OFFSET_CHECKPOINT_FILE))
                .unwrap_or_default();
            // Without a high watermark checkpoint, logs start from their log
            // start offsets and leaders recompute it from their ISR.
            let hws = read_checkpoint(&dir.path.join(HIGH_WATERMARK_CHECKPOINT_FILE)).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable high watermark checkpoint; logs start from their log start offsets");
                HashMap::new()
            });
            let entries = match fs::read_dir(&dir.path) {
                Ok(entries) => entries,
                Err(e) => {
                    let e = StorageError::io("list log directory", &dir.path)(e);
                    tracing::error!(dir = %dir.path.display(), error = %e, "log directory failed: it is offline with all its partitions (KAFKA_STORAGE_ERROR) until a restart finds it healthy");
                    self.offline_dirs.write().push(dir.path.clone());
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(DELETE_DIR_SUFFIX) {
                    remove_dir(&path);
                    continue;
                }
                if name == METADATA_LOG_DIR_NAME {
                    continue;
                }
                let Some(tp) = parse_log_dir_name(&name) else {
                    continue;
                };
                let topic_id = match read_partition_metadata(&path) {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::error!(partition = %tp, error = %e, "unreadable partition.metadata; setting the log aside");
                        set_aside(&path);
                        summary.stray_logs += 1;
                        continue;
                    }
                };
                let Some((config, expected_id)) = config_for(&tp, topic_id) else {
                    tracing::warn!(partition = %tp, "setting aside a log the metadata does not know (stray)");
                    set_aside(&path);
                    summary.stray_logs += 1;
                    continue;
                };
                let options = LoadOptions {
                    had_clean_shutdown: self.had_clean_shutdown,
                    recovery_point: recovery.get(&tp).copied().unwrap_or(0),
                    log_start_offset: starts.get(&tp).copied().unwrap_or(0),
                    high_watermark: hws.get(&tp).copied(),
                    now_ms,
                    topic_id: expected_id,
                };
                let (log, report) = match Log::load(
                    path.clone(),
                    tp.clone(),
                    Arc::clone(&config),
                    options,
                ) {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        tracing::error!(partition = %tp, error = %e, "cannot load the log: the partition is offline (KAFKA_STORAGE_ERROR) until a restart loads it");
                        let offline =
                            Log::failed_to_load(path, tp.clone(), config, &options, e.to_string());
                        self.logs.write().insert(tp, Arc::new(offline));
                        summary.offline_logs += 1;
                        continue;
                    }
                };
                summary.logs += 1;
                summary.report.segments += report.segments;
                summary.report.recovered_segments += report.recovered_segments;
                summary.report.truncated_bytes += report.truncated_bytes;
                summary.report.deleted_segments += report.deleted_segments;
                self.logs.write().insert(tp, Arc::new(log));
            }
        }
        for dir in self.online_dirs() {
            let marker = dir.path.join(CLEAN_SHUTDOWN_FILE);
            match fs::remove_file(&marker) {
                Ok(()) => sync_dir(&dir.path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove clean shutdown marker", &marker)(e)),
            }
        }
        Ok(summary)
    }

    /// While a log directory is offline: holds each of `assigned` (the
    /// partitions the metadata places on this broker, with their topic ids
    /// and configs) that no online directory had as an offline log, since
    /// its data may be in the failed directory; an empty new log could
    /// otherwise pass for it. Returns how many it holds so.
    pub fn hold_missing_logs_offline(
        &self,
        assigned: Vec<(TopicPartition, Uuid, Arc<TopicConfig>)>,
        now_ms: i64,
    ) -> usize {
        let offline = self.offline_dirs();
        let Some(failed) = offline.first() else {
            return 0;
        };
        let mut logs = self.logs.write();
        let mut held = 0;
        for (tp, topic_id, config) in assigned {
            if logs.contains_key(&tp) {
                continue;
            }
            let options = LoadOptions {
                had_clean_shutdown: false,
                recovery_point: 0,
                log_start_offset: 0,
                high_watermark: None,
                now_ms,
                topic_id,
            };
            let reason = format!(
                "its log may be in the failed log directory {}",
                failed.display()
            );
            let log = Log::failed_to_load(
                failed.join(tp.to_string()),
                tp.clone(),
                config,
                &options,
                reason,
            );
            logs.insert(tp, Arc::new(log));
            held += 1;
        }
        held
    }

    /// The log of a partition, if this broker has it.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.logs.read().get(tp).cloned()
    }

    /// Every log, offline ones included, as of now.
    pub fn all(&self) -> Vec<Arc<Log>> {
        self.logs.read().values().cloned().collect()
    }

    /// Returns the partition's log, creating it in the least-used directory
    /// if needed. A log with another topic id (a deleted and re-created
    /// topic) is replaced.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        config: Arc<TopicConfig>,
        now_ms: i64,
    ) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            if log.topic_id() == topic_id {
                return Ok(log);
            }
            self.delete(tp)?;
        }
        let mut logs = self.logs.write();
        if let Some(log) = logs.get(tp) {
            return Ok(Arc::clone(log));
        }
        let dir = self
            .online_dirs()
            .min_by_key(|d| {
                logs.values()
                    .filter(|l| l.dir().starts_with(&d.path))
                    .count()
            })
            .ok_or_else(|| StorageError::Closed("no log directories".into()))?;
        let path = dir.path.join(tp.to_string());
        if path.exists() {
            // Left over from a log that was not loaded: keep it aside.
            set_aside(&path);
        }
        let log = Arc::new(Log::create(path, tp.clone(), topic_id, config, now_ms)?);
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Removes a partition's log: it stops accepting appends at once, its
    /// directory is renamed `<name>.<id>-delete` and then removed.
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let Some(log) = self.logs.write().remove(tp) else {
            return Ok(());
        };
        log.mark_closed();
        let dir = log.dir().to_path_buf();
        let doomed = dir.with_file_name(format!(
            "{}.{}{DELETE_DIR_SUFFIX}",
            tp,
            Uuid::new_v4().simple()
        ));
        fs::rename(&dir, &doomed).map_err(StorageError::io("rename deleted log", &dir))?;
        if let Some(parent) = doomed.parent() {
            let _ = sync_dir(parent);
        }
        remove_dir(&doomed);
        Ok(())
    }

    /// Applies retention to every log; returns segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> usize {
        let mut deleted = 0;
        for log in self.all() {
            match log.enforce_retention(now_ms) {
                Ok(o) => deleted += o.deleted_segments,
                Err(e) => {
                    tracing::error!(partition = %log.topic_partition(), error = %e, "retention failed")
                }
            }
        }
        deleted
    }

    /// Flushes logs whose `flush.ms` has passed.
    pub fn flush_due(&self, now_ms: i64) {
        for log in self.all() {
            if let Err(e) = log.flush_if_due(now_ms) {
                tracing::error!(partition = %log.topic_partition(), error = %e, "flush failed");
            }
        }
    }

    /// Forgets idle producers in every log (`producer.id.expiration.ms`).
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.all()
            .iter()
            .map(|l| l.remove_expired_producers(now_ms, expiration_ms))
            .sum()
    }

    /// Writes the recovery point, log start offset and high watermark
    /// checkpoints of every directory (all of them, even after one fails;
    /// the first error is returned).
    pub fn checkpoint(&self) -> Result<()> {
        let mut first_error = None;
        for dir in self.checkpoint_dirs() {
            if let Err(e) = dir {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Checkpoints each directory; one result per directory, in order.
    fn checkpoint_dirs(&self) -> Vec<Result<()>> {
        let _one_writer = self.checkpoint_lock.lock();
        let logs = self.all();
        let offline = self.offline_dirs();
        self.dirs
            .iter()
            .map(|dir| {
                if offline.contains(&dir.path) {
                    // Left as it was: nothing there is loaded.
                    return Ok(());
                }
                let mut recovery = Vec::new();
                let mut starts = Vec::new();
                let mut hws = Vec::new();
                for log in logs.iter().filter(|l| l.dir().starts_with(&dir.path)) {
                    let o = log.offsets();
                    let tp = log.topic_partition().clone();
                    recovery.push((tp.clone(), o.recovery_point));
                    starts.push((tp.clone(), o.log_start_offset));
                    hws.push((tp, o.high_watermark));
                }
                recovery.sort();
                starts.sort();
                hws.sort();
                write_checkpoint(&dir.path.join(RECOVERY_POINT_CHECKPOINT_FILE), &recovery)?;
                write_checkpoint(&dir.path.join(LOG_START_OFFSET_CHECKPOINT_FILE), &starts)?;
                write_checkpoint(&dir.path.join(HIGH_WATERMARK_CHECKPOINT_FILE), &hws)
            })
            .collect()
    }

    /// Closes every log (flushing them), writes the checkpoints and the
    /// clean-shutdown markers. An error stops nothing half-way: every log
    /// is still closed and every directory checkpointed, and only the
    /// directories where all of it succeeded get the marker, so the next
    /// start-up recovers the others. Returns the first error.
    pub fn shutdown(&self, now_ms: i64) -> Result<()> {
        let mut first_error = None;
        let mut unclean = vec![false; self.dirs.len()];
        for log in self.all() {
            if let Err(e) = log.close(now_ms) {
                tracing::error!(partition = %log.topic_partition(), error = %e, "cannot close the log cleanly; it is recovered at the next start-up");
                for (dir, unclean) in self.dirs.iter().zip(unclean.iter_mut()) {
                    if log.dir().starts_with(&dir.path) {
                        *unclean = true;
                    }
                }
                first_error.get_or_insert(e);
            }
        }
        for (i, checkpointed) in self.checkpoint_dirs().into_iter().enumerate() {
            if let Err(e) = checkpointed {
                tracing::error!(error = %e, "cannot write the offset checkpoints");
                if let Some(u) = unclean.get_mut(i) {
                    *u = true;
                }
                first_error.get_or_insert(e);
            }
        }
        let offline = self.offline_dirs();
        for (dir, unclean) in self.dirs.iter().zip(unclean) {
            if unclean || offline.contains(&dir.path) {
                continue;
            }
            if let Err(e) = write_atomically(
                &dir.path.join(CLEAN_SHUTDOWN_FILE),
                br#"{"version":0,"brokerEpoch":-1}"#,
            ) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Renames a log directory to `<name>.<id>-stray`.
fn set_aside(path: &Path) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let target = path.with_file_name(format!(
        "{name}.{}{STRAY_DIR_SUFFIX}",
        Uuid::new_v4().simple()
    ));
    if let Err(e) = fs::rename(path, &target) {
        tracing::error!(path = %path.display(), error = %e, "cannot set a log directory aside");
    }
}

fn remove_dir(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path) {
        tracing::error!(path = %path.display(), error = %e, "cannot remove directory");
    }
}
