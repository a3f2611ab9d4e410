//! The client side of the server's change-notification endpoint
//! (`POST sys/secretvault/watch`, a long poll): it tells the agent which of the KV v2
//! data paths it read have changed, so a new version reaches the files within a second.
//! The periodic refresh stays as the fallback, and is all there is against servers
//! without the endpoint (OpenBao, Vault): those answer 404, 405 or 403.
//!
//! Contract: the agent takes an index *before* its first reads ([`initial_index`]), then
//! polls with it; every answer carries the next index. `reset: true` means the server
//! cannot tell what changed since the index (another server process, or too old): the
//! agent re-reads everything. A 403 naming `paths[i]` means the token may not read that
//! path: it is dropped from the watch (its secret keeps failing or refreshing on its own).

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::auth::{self, TokenText};
use crate::backoff::Backoff;
use crate::vault::{ApiResponse, VaultClient};

pub const WATCH_PATH: &str = "sys/secretvault/watch";
/// How long the server may hold a poll (the contract clamps it to 60 s).
pub const WAIT: Duration = Duration::from_secs(30);
/// The contract's limit on paths per watch.
pub const MAX_PATHS: usize = 256;

/// What the watcher tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// These data paths have new content.
    Changed(Vec<String>),
    /// Changes may have been missed: re-read everything.
    Reset,
}

/// The answer to one watch request.
#[derive(Debug)]
enum Answer {
    Ok {
        index: String,
        changed: Vec<String>,
        reset: bool,
    },
    /// The server has no such endpoint (or refuses it wholesale).
    Unsupported(String),
    /// The token may not read these paths.
    Denied(Vec<String>),
    /// The token itself is refused (expired, revoked) or the endpoint is forbidden; the
    /// caller tells which with `lookup-self`.
    Forbidden(String),
    /// Try again later (after at least the given delay, if any).
    Retry(String, Option<Duration>),
}

async fn ask(
    client: &VaultClient,
    token: &str,
    paths: &[String],
    index: Option<&str>,
    wait: Duration,
) -> Answer {
    let mut body = json!({ "paths": paths, "wait": format!("{}s", wait.as_secs()) });
    if let Some(i) = index {
        body["index"] = Value::String(i.to_string());
    }
    let resp = match client
        .send(
            Method::POST,
            WATCH_PATH,
            Some(token),
            Some(&body),
            wait + Duration::from_secs(15),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::Retry(e.to_string(), None),
    };
    classify(resp)
}

fn classify(resp: ApiResponse) -> Answer {
    match resp.status {
        200 => {
            let data = &resp.body["data"];
            let Some(index) = data["index"].as_str() else {
                return Answer::Retry("the watch answer has no data.index".into(), None);
            };
            let changed = data["changed"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Answer::Ok {
                index: index.to_string(),
                changed,
                reset: data["reset"].as_bool().unwrap_or(false),
            }
        }
        404 | 405 => Answer::Unsupported(resp.describe()),
        403 => {
            let denied: Vec<String> = resp
                .errors()
                .iter()
                .filter_map(|e| denied_path(e))
                .collect();
            if denied.is_empty() {
                Answer::Forbidden(resp.describe())
            } else {
                Answer::Denied(denied)
            }
        }
        _ => Answer::Retry(resp.describe(), resp.retry_after),
    }
}

/// `paths[1] "secret/data/other": no read capability` → `secret/data/other`.
fn denied_path(error: &str) -> Option<String> {
    let rest = error.strip_prefix("paths[")?;
    let (_, rest) = rest.split_once("] ")?;
    let (quoted, tail) = rest.rsplit_once(':')?;
    if !tail.contains("no read capability") {
        return None;
    }
    serde_json::from_str::<String>(quoted.trim()).ok()
}

/// The result of taking the first index.
pub enum Initial {
    Index(String),
    /// The server has no watch endpoint: rely on the periodic refresh.
    Unsupported,
    /// Could not get one now; the watcher will, and then asks for a full re-read.
    Later,
}

/// Takes an index before the first reads, so no change between those reads and the
/// first poll is lost. Drops paths the token may not read (`paths` is updated).
pub async fn initial_index(
    client: &VaultClient,
    token: &TokenText,
    paths: &mut Vec<String>,
) -> Initial {
    for _ in 0..=MAX_PATHS {
        if paths.is_empty() {
            return Initial::Later;
        }
        match ask(client, token, paths, None, Duration::ZERO).await {
            Answer::Ok { index, .. } => return Initial::Index(index),
            Answer::Unsupported(detail) => {
                log_unsupported(&detail);
                return Initial::Unsupported;
            }
            Answer::Denied(denied) => paths.retain(|p| !denied.contains(p)),
            Answer::Forbidden(detail) => {
                return match auth::is_valid(client, token).await {
                    Ok(true) => {
                        log_unsupported(&detail);
                        Initial::Unsupported
                    }
                    _ => Initial::Later,
                };
            }
            Answer::Retry(detail, _) => {
                debug!(error = %detail, "could not take a watch index yet");
                return Initial::Later;
            }
        }
    }
    Initial::Later
}

fn log_unsupported(detail: &str) {
    info!(
        endpoint = WATCH_PATH,
        answer = %detail,
        "the server has no change-notification endpoint; secrets refresh on the refresh interval only"
    );
}

/// Long-polls until the agent drops `events`, or the server turns out not to support
/// watching. `paths` holds the data paths to watch (the agent updates it as templates
/// read new ones); `tokens` the current token.
pub async fn run(
    client: VaultClient,
    mut tokens: watch::Receiver<Option<TokenText>>,
    mut paths: watch::Receiver<BTreeSet<String>>,
    mut index: Option<String>,
    events: mpsc::Sender<WatchEvent>,
) {
    let mut backoff = Backoff::new();
    let mut denied: BTreeSet<String> = BTreeSet::new();
    let mut quick_empty_answers = 0u32;
    loop {
        let token = tokens.borrow_and_update().clone();
        let wanted: Vec<String> = paths
            .borrow_and_update()
            .iter()
            .filter(|p| !denied.contains(*p))
            .take(MAX_PATHS)
            .cloned()
            .collect();
        let Some(token) = token.filter(|_| !wanted.is_empty()) else {
            // Nothing to watch, or no token yet: wait for either to change.
            tokio::select! {
                r = paths.changed() => if r.is_err() { return },
                r = tokens.changed() => if r.is_err() { return },
            }
            denied.clear();
            continue;
        };
        let started = Instant::now();
        let wait = if index.is_some() {
            WAIT
        } else {
            Duration::ZERO
        };
        let answer = tokio::select! {
            a = ask(&client, &token, &wanted, index.as_deref(), wait) => a,
            // A new path set restarts the poll (the index stays valid for any paths).
            r = paths.changed() => {
                if r.is_err() { return }
                denied.clear();
                continue;
            }
        };
        let delay = match answer {
            Answer::Ok {
                index: next,
                changed,
                reset,
            } => {
                backoff.reset();
                let first = index.is_none();
                index = Some(next);
                let event = if reset || first {
                    // `first`: this index was taken after the agent's first reads, so
                    // anything in between is unknown.
                    Some(WatchEvent::Reset)
                } else if !changed.is_empty() {
                    Some(WatchEvent::Changed(changed))
                } else {
                    None
                };
                let quick = started.elapsed() < wait / 2;
                match event {
                    Some(e) => {
                        quick_empty_answers = 0;
                        if events.send(e).await.is_err() {
                            return;
                        }
                        None
                    }
                    // A server shutting down answers at once; don't spin on it.
                    None if quick && !first => {
                        quick_empty_answers += 1;
                        (quick_empty_answers > 1).then(|| backoff.next_delay())
                    }
                    None => {
                        quick_empty_answers = 0;
                        None
                    }
                }
            }
            Answer::Unsupported(detail) => {
                log_unsupported(&detail);
                return;
            }
            Answer::Denied(paths_denied) => {
                for p in paths_denied {
                    debug!(path = %p, "not watching a path the token may not read");
                    denied.insert(p);
                }
                None
            }
            Answer::Forbidden(detail) => match auth::is_valid(&client, &token).await {
                Ok(true) => {
                    log_unsupported(&detail);
                    return;
                }
                // The token is no longer accepted: the agent logs in again; wait for it.
                Ok(false) => {
                    tokio::select! {
                        r = tokens.changed() => if r.is_err() { return },
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                    None
                }
                Err(e) => {
                    warn!(error = %e, "change notifications interrupted; retrying");
                    Some(backoff.next_delay())
                }
            },
            Answer::Retry(detail, retry_after) => {
                let d = backoff.next_delay().max(retry_after.unwrap_or_default());
                debug!(error = %detail, retry_in = %crate::duration::display(d), "change notifications interrupted");
                Some(d)
            }
        };
        if let Some(d) = delay {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                r = paths.changed() => if r.is_err() { return } else { denied.clear() },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: Value) -> ApiResponse {
        ApiResponse {
            status,
            body,
            retry_after: None,
        }
    }

    #[test]
    fn reads_answers() {
        match classify(resp(
            200,
            json!({"data": {"index": "7", "changed": ["secret/data/a"], "reset": false}}),
        )) {
            Answer::Ok {
                index,
                changed,
                reset,
            } => {
                assert_eq!(index, "7");
                assert_eq!(changed, vec!["secret/data/a"]);
                assert!(!reset);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(resp(404, json!({"errors": []}))),
            Answer::Unsupported(_)
        ));
        assert!(matches!(
            classify(resp(405, Value::Null)),
            Answer::Unsupported(_)
        ));
        match classify(resp(
            403,
            json!({"errors": ["permission denied", "paths[1] \"secret/data/other\": no read capability"]}),
        )) {
            Answer::Denied(p) => assert_eq!(p, vec!["secret/data/other"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(resp(403, json!({"errors": ["permission denied"]}))),
            Answer::Forbidden(_)
        ));
        assert!(matches!(
            classify(resp(
                429,
                json!({"errors": ["too many concurrent watches for this token (limit 8)"]})
            )),
            Answer::Retry(..)
        ));
    }

    #[test]
    fn parses_denied_path_errors() {
        assert_eq!(
            denied_path("paths[12] \"secret/data/a: b\": no read capability").as_deref(),
            Some("secret/data/a: b")
        );
        assert_eq!(denied_path("permission denied"), None);
    }
}
