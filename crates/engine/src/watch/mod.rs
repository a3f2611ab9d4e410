//! Change notification for KV v2 data paths: the engine half of
//! `sys/secretvault/watch`, the agent's long poll (a secretvault extension, not Vault API).
//!
//! - [`ChangeLog`]: an in-memory log of which secrets changed, numbered by a per-process
//!   index. The KV mount publishes a secret's name after every change is durable; a
//!   watcher asks "did any of these change after index N?" and waits until one does, its
//!   wait runs out, or the server shuts down. Nothing is stored: a restarted process has
//!   a new random epoch, so indexes it did not issue get `reset` (re-read everything).
//! - [`WatchLimits`]: bounds on concurrent watches, per token accessor and per process,
//!   held by RAII permits so a dropped request (client gone) frees its slot.
//! - [`WatchRequest`]: the request body, validated with messages that name the field.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::logical::{ApiError, json_type_name};

/// The API path of the endpoint.
pub const WATCH_PATH: &str = "sys/secretvault/watch";
/// Only KV v2 data paths of the `secret/` mount can be watched.
pub const KV_DATA_PREFIX: &str = "secret/data/";
/// Most paths one watch may name.
pub const MAX_PATHS: usize = 256;
/// Wait used when the request gives none.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait honoured; longer requests are clamped to it.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Concurrent watches one token accessor may hold.
pub const PER_ACCESSOR_LIMIT: usize = 8;
/// Concurrent watches in the whole process.
pub const GLOBAL_LIMIT: usize = 4096;
/// Changes remembered. A watcher whose index is older than the oldest of these is told
/// to re-read everything (`reset`), which only happens to one that fell this many writes
/// behind.
pub const RETAINED_CHANGES: usize = 16_384;
/// Bytes of secret names remembered, at most: KV paths have no length limit of their own,
/// and a writer with long names must not make the log grow without bound.
pub const RETAINED_NAME_BYTES: usize = 4 << 20;

/// A position in one process's change log; rendered as an opaque string for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Index {
    epoch: u64,
    seq: u64,
}

impl Index {
    fn render(self) -> String {
        format!("{:016x}-{}", self.epoch, self.seq)
    }

    /// `None` for anything this code did not render (another implementation, garbage).
    fn parse(s: &str) -> Option<Index> {
        let (epoch, seq) = s.trim().split_once('-')?;
        if epoch.len() != 16 {
            return None;
        }
        Some(Index {
            epoch: u64::from_str_radix(epoch, 16).ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// The answer to a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOutcome {
    /// The index to send next time.
    pub index: String,
    /// Positions (into the request's paths, ascending) of the paths that changed; a path
    /// named twice is reported at its first position only.
    pub changed: Vec<usize>,
    /// The log cannot tell what changed since the given index: every path is in `changed`.
    pub reset: bool,
}

struct LogState {
    latest: u64,
    /// The highest index no longer retained (0 while nothing has been forgotten).
    forgotten: u64,
    recent: VecDeque<(u64, Arc<str>)>,
    /// Sum of the lengths of the names in `recent`.
    name_bytes: usize,
}

/// Which secrets of one KV mount changed, by index, since this process started.
pub struct ChangeLog {
    epoch: u64,
    capacity: usize,
    max_name_bytes: usize,
    state: Mutex<LogState>,
    /// Bumped on every change and at shutdown; waiters hold receivers. A `watch` channel
    /// rather than `Notify` because a wake-up sent between a waiter's check and its await
    /// is kept (the receiver sees the version changed), so none is lost.
    wake: tokio::sync::watch::Sender<()>,
    shut_down: AtomicBool,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeLog {
    pub fn new() -> Self {
        Self::with_capacity(RETAINED_CHANGES)
    }

    /// A log remembering the last `capacity` changes (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_limits(capacity, RETAINED_NAME_BYTES)
    }

    /// A log remembering the last `capacity` changes (at least the latest one) whose
    /// names take at most `max_name_bytes` together.
    pub fn with_limits(capacity: usize, max_name_bytes: usize) -> Self {
        ChangeLog {
            epoch: u64::from_le_bytes(crate::crypto::random_bytes::<8>()),
            capacity: capacity.max(1),
            max_name_bytes,
            state: Mutex::new(LogState {
                latest: 0,
                forgotten: 0,
                recent: VecDeque::new(),
                name_bytes: 0,
            }),
            wake: tokio::sync::watch::Sender::new(()),
            shut_down: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        // The state is consistent after every statement that touches it, so a panic
        // elsewhere while it was held cannot have left it half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the secret `name` (relative to the mount: `app/db` for
    /// `secret/data/app/db`) changed. Call only once the change is durable: a watcher
    /// woken by this reads at once and must see it.
    pub fn publish(&self, name: &str) {
        {
            let mut state = self.lock();
            state.latest += 1;
            let seq = state.latest;
            state.recent.push_back((seq, Arc::from(name)));
            state.name_bytes += name.len();
            while state.recent.len() > self.capacity
                || (state.name_bytes > self.max_name_bytes && state.recent.len() > 1)
            {
                let Some((old, old_name)) = state.recent.pop_front() else {
                    break;
                };
                state.forgotten = old;
                state.name_bytes -= old_name.len();
            }
        }
        self.wake.send_modify(|()| {});
    }

    /// The current index, for a client about to read.
    pub fn current_index(&self) -> String {
        Index {
            epoch: self.epoch,
            seq: self.lock().latest,
        }
        .render()
    }

    /// Makes every pending and future wait answer at once (server shutdown).
    pub fn shut_down(&self) {
        self.shut_down.store(true, Ordering::SeqCst);
        self.wake.send_modify(|()| {});
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// What changed among `names` after `index`, without waiting.
    pub fn poll(&self, index: Option<&str>, names: &[&str]) -> WatchOutcome {
        match self.since(index, names) {
            Ok(Some(seq)) => self.scan(seq, names).0,
            Ok(None) => self.fresh(),
            Err(reset) => reset,
        }
    }

    /// Answers as soon as one of `names` has changed after `index` (at once if one already
    /// has), else after `wait` (or at shutdown) with nothing changed. Without an index it
    /// answers at once with the current one. Holds no lock while waiting.
    pub async fn wait(&self, index: Option<&str>, names: &[&str], wait: Duration) -> WatchOutcome {
        let mut scanned = match self.since(index, names) {
            Ok(Some(seq)) => seq,
            Ok(None) => return self.fresh(),
            Err(reset) => return reset,
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut wake = self.wake.subscribe();
        let mut last_round = false;
        loop {
            // Mark the current version seen before looking, so a change published after
            // the scan below still wakes the `changed()` that follows.
            wake.borrow_and_update();
            let (outcome, through) = self.scan(scanned, names);
            if outcome.reset || !outcome.changed.is_empty() || last_round || self.is_shut_down() {
                return outcome;
            }
            // Nothing relevant up to `through`: later rounds only look at newer entries.
            scanned = through;
            match tokio::time::timeout_at(deadline, wake.changed()).await {
                Ok(Ok(())) => {}
                // Timed out (or the sender is gone, which cannot happen while `self`
                // lives): one last look, then answer.
                Ok(Err(_)) | Err(_) => last_round = true,
            }
        }
    }

    /// The sequence number a client's index stands for in this log: `Ok(None)` for no
    /// index, `Err(reset outcome)` when this log cannot answer for it.
    fn since(&self, index: Option<&str>, names: &[&str]) -> Result<Option<u64>, WatchOutcome> {
        let Some(index) = index.filter(|i| !i.trim().is_empty()) else {
            return Ok(None);
        };
        match Index::parse(index) {
            Some(i) if i.epoch == self.epoch => Ok(Some(i.seq)),
            // Another process's (or nobody's) index: we cannot tell what changed.
            _ => Err(self.reset(names)),
        }
    }

    fn fresh(&self) -> WatchOutcome {
        WatchOutcome {
            index: self.current_index(),
            changed: Vec::new(),
            reset: false,
        }
    }

    fn reset(&self, names: &[&str]) -> WatchOutcome {
        WatchOutcome {
            index: self.current_index(),
            changed: first_positions(names),
            reset: true,
        }
    }

    /// Which of `names` changed after `after`; also returns the index scanned through.
    fn scan(&self, after: u64, names: &[&str]) -> (WatchOutcome, u64) {
        let state = self.lock();
        let render = |seq| {
            Index {
                epoch: self.epoch,
                seq,
            }
            .render()
        };
        if after < state.forgotten || after > state.latest {
            // Older than what we remember, or from the future (a forged or corrupted
            // index): either way we cannot tell.
            let outcome = WatchOutcome {
                index: render(state.latest),
                changed: first_positions(names),
                reset: true,
            };
            return (outcome, state.latest);
        }
        let mut wanted: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            wanted.entry(name).or_insert(i);
        }
        // Entries are in index order: walk back from the newest to the first one after
        // `after`.
        let hits: BTreeSet<usize> = state
            .recent
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > after)
            .filter_map(|(_, name)| wanted.get(name.as_ref()).copied())
            .collect();
        let outcome = WatchOutcome {
            index: render(state.latest),
            changed: hits.into_iter().collect(),
            reset: false,
        };
        (outcome, state.latest)
    }
}

/// Every distinct name's first position.
fn first_positions(names: &[&str]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| seen.insert(**n))
        .map(|(i, _)| i)
        .collect()
}

/// Why a watch was refused for capacity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("too many concurrent watches for this token (limit {0})")]
    PerToken(usize),
    #[error(
        "too many concurrent watches on this server (limit {0}); retry in a second or rely on periodic refresh"
    )]
    Server(usize),
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::PerToken(_) => ApiError::new(429, e.to_string()),
            LimitError::Server(_) => ApiError::new(503, e.to_string()).with_retry_after(1),
        }
    }
}

struct LimitState {
    total: usize,
    by_accessor: HashMap<String, usize>,
}

/// Concurrent-watch bounds. Counts live in memory only: no storage write per watch.
pub struct WatchLimits {
    per_accessor: usize,
    total: usize,
    state: Mutex<LimitState>,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self::new(PER_ACCESSOR_LIMIT, GLOBAL_LIMIT)
    }
}

impl WatchLimits {
    pub fn new(per_accessor: usize, total: usize) -> Self {
        WatchLimits {
            per_accessor,
            total,
            state: Mutex::new(LimitState {
                total: 0,
                by_accessor: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimitState> {
        // Counters are updated in single statements; a poisoned lock still holds valid ones.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for one watch by the token with `accessor`; the slot is freed when the
    /// permit is dropped, whether the watch answered or its request was abandoned.
    pub fn acquire(&self, accessor: &str) -> Result<WatchPermit<'_>, LimitError> {
        let mut state = self.lock();
        let held = state.by_accessor.get(accessor).copied().unwrap_or(0);
        if held >= self.per_accessor {
            return Err(LimitError::PerToken(self.per_accessor));
        }
        if state.total >= self.total {
            return Err(LimitError::Server(self.total));
        }
        state.total += 1;
        state.by_accessor.insert(accessor.to_string(), held + 1);
        Ok(WatchPermit {
            limits: self,
            accessor: accessor.to_string(),
        })
    }

    /// Watches in progress: (whole process, this accessor).
    pub fn in_use(&self, accessor: &str) -> (usize, usize) {
        let state = self.lock();
        (
            state.total,
            state.by_accessor.get(accessor).copied().unwrap_or(0),
        )
    }
}

/// One watch's slot; released on drop.
pub struct WatchPermit<'a> {
    limits: &'a WatchLimits,
    accessor: String,
}

impl Drop for WatchPermit<'_> {
    fn drop(&mut self) {
        let mut state = self.limits.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.by_accessor.get_mut(&self.accessor) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_accessor.remove(&self.accessor);
            }
        }
    }
}

/// A validated watch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    /// The paths as the client named them (`secret/data/app`), echoed in `changed`.
    pub paths: Vec<String>,
    pub index: Option<String>,
    /// Already clamped to `[0, MAX_WAIT]`.
    pub wait: Duration,
}

/// A malformed watch request; every message names the field (and item) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchRequestError {
    #[error("paths: required; give 1 to {MAX_PATHS} KV v2 data paths such as \"secret/data/app\"")]
    NoPaths,
    #[error("paths: expected a list of strings, got {0}")]
    PathsNotList(&'static str),
    #[error(
        "paths: {0} paths given, but at most {MAX_PATHS} can be watched in one request; split them across several watches"
    )]
    TooManyPaths(usize),
    #[error("paths[{0}]: expected a string, got {1}")]
    PathNotString(usize, &'static str),
    #[error(
        "paths[{0}]: {1:?} is not a KV v2 data path (secret/data/...); only those can be watched"
    )]
    NotKvData(usize, String),
    #[error(
        "paths[{0}]: {1:?} does not name a single secret (it is empty, ends with '/' or has '.' or '..' segments); name each secret to watch"
    )]
    NotASecret(usize, String),
    #[error(
        "index: expected the string \"index\" from a previous response, got {0}; omit it to get the current index"
    )]
    IndexNotString(&'static str),
    #[error("wait: {0}; give a duration such as \"30s\" or \"1m\", or a number of seconds")]
    Wait(String),
}

impl From<WatchRequestError> for ApiError {
    fn from(e: WatchRequestError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl WatchRequest {
    /// Validates a request body (`paths`, `index`, `wait`).
    pub fn parse(data: &Map<String, Value>) -> Result<WatchRequest, WatchRequestError> {
        let items: Vec<(usize, &str)> = match data.get("paths") {
            None | Some(Value::Null) => return Err(WatchRequestError::NoPaths),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok((i, s.as_str())),
                    other => Err(WatchRequestError::PathNotString(i, json_type_name(other))),
                })
                .collect::<Result<_, _>>()?,
            // `vault write sys/secretvault/watch paths=a,b` sends one comma-separated string.
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .collect(),
            Some(other) => return Err(WatchRequestError::PathsNotList(json_type_name(other))),
        };
        if items.is_empty() {
            return Err(WatchRequestError::NoPaths);
        }
        if items.len() > MAX_PATHS {
            return Err(WatchRequestError::TooManyPaths(items.len()));
        }
        let mut paths = Vec::with_capacity(items.len());
        for (i, path) in items {
            secret_name(path).map_err(|kind| match kind {
                NameError::NotKvData => WatchRequestError::NotKvData(i, path.to_string()),
                NameError::NotASecret => WatchRequestError::NotASecret(i, path.to_string()),
            })?;
            paths.push(path.to_string());
        }
        let index = match data.get("index") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(WatchRequestError::IndexNotString(json_type_name(other))),
        };
        let wait = match data.get("wait") {
            None | Some(Value::Null) => DEFAULT_WAIT,
            // Clamped, not refused: a client asking for less than nothing gets an answer now.
            Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f < 0.0) => Duration::ZERO,
            Some(Value::String(s)) if s.trim().is_empty() => DEFAULT_WAIT,
            Some(Value::String(s))
                if s.trim().starts_with('-')
                    && crate::util::duration::parse_duration(&s.trim()[1..]).is_ok() =>
            {
                Duration::ZERO
            }
            Some(v) => crate::util::duration::parse_duration_value(v)
                .map_err(|e| WatchRequestError::Wait(e.to_string()))?,
        };
        Ok(WatchRequest {
            paths,
            index,
            wait: wait.min(MAX_WAIT),
        })
    }

    /// The secret names (relative to the KV mount) of the paths, in the same order.
    pub fn names(&self) -> Vec<&str> {
        self.paths
            .iter()
            .map(|p| secret_name(p).unwrap_or_default())
            .collect()
    }
}

enum NameError {
    NotKvData,
    NotASecret,
}

/// `secret/data/app/db` → `app/db`, refusing what the KV mount would refuse to read.
fn secret_name(path: &str) -> Result<&str, NameError> {
    let name = path
        .strip_prefix(KV_DATA_PREFIX)
        .ok_or(NameError::NotKvData)?;
    if name.is_empty() || name.ends_with('/') || name.split('/').any(|s| s == "." || s == "..") {
        return Err(NameError::NotASecret);
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
