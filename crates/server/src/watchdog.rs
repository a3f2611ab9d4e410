//! The header-read deadline: a client that is not being served must send a whole request
//! head within `header_read_timeout`, or its connection is closed (slow-loris clients,
//! idle keep-alive connections holding a slot).
//!
//! Why not hyper's own `header_read_timeout`: it arms a fresh timer for every request
//! (an allocation, and an insert and removal in tokio's timer wheel), which measured
//! ~3 % of the instructions of a KV read. Here each connection has one timer, reset only
//! when it fires, and a request costs three atomic updates and one clock read.
//!
//! The deadline runs from the moment the connection opened or its last response was
//! produced; while a request is being served (its body read, a long poll held) the
//! connection is busy and no deadline applies — the body has its own read limit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What one connection is doing, shared by its request handlers and its watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Requests being served on the connection right now.
    busy: AtomicU32,
    /// When the connection last became idle, in microseconds since `opened`.
    idle_since_micros: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            busy: AtomicU32::new(0),
            idle_since_micros: AtomicU64::new(0),
        })
    }

    /// Marks a request as being served until the returned guard is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Serving(self.clone())
    }

    /// Restarts the clock: the connection is idle from now (a TLS handshake just ended).
    pub fn restart(&self) {
        self.idle_since_micros
            .fetch_max(micros_since(self.opened), Ordering::AcqRel);
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_micros(self.idle_since_micros.load(Ordering::Acquire))
    }
}

/// A request in progress; dropping it (when the response is ready) restarts the clock.
#[derive(Debug)]
pub struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        // Stored before `busy` drops, so a watchdog that sees the connection idle also
        // sees when it became so.
        self.0.restart();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Runs `conn` to completion, unless it stays idle for `limit`: then it is dropped (which
/// closes the socket) and `None` is returned.
pub async fn close_when_stalled<F: Future>(
    conn: F,
    activity: Arc<Activity>,
    limit: Duration,
) -> Option<F::Output> {
    let mut conn = std::pin::pin!(conn);
    let deadline = tokio::time::sleep_until(activity.idle_since() + limit);
    let mut deadline = std::pin::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            out = &mut conn => return Some(out),
            () = &mut deadline => {
                let next = if activity.busy.load(Ordering::Acquire) > 0 {
                    Instant::now() + limit
                } else {
                    let due = activity.idle_since() + limit;
                    if due <= Instant::now() {
                        return None;
                    }
                    due
                };
                deadline.as_mut().reset(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_connections_are_closed_at_the_deadline() {
        let activity = Activity::new();
        let started = Instant::now();
        let out = close_when_stalled(
            std::future::pending::<()>(),
            activity,
            Duration::from_secs(10),
        )
        .await;
        assert!(out.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_restarts_when_a_response_is_ready() {
        let activity = Activity::new();
        let started = Instant::now();
        let requests = {
            let activity = activity.clone();
            async move {
                // One request at 4 s, served for 30 s (a long poll); another at 40 s.
                tokio::time::sleep(Duration::from_secs(4)).await;
                let serving = activity.serving();
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(serving);
                tokio::time::sleep(Duration::from_secs(6)).await;
                drop(activity.serving());
                std::future::pending::<()>().await
            }
        };
        let out = close_when_stalled(requests, activity, Duration::from_secs(10)).await;
        assert!(out.is_none());
        // Idle from 40 s (the last response) for the 10 s limit.
        assert_eq!(started.elapsed(), Duration::from_secs(50));
    }

    #[tokio::test(start_paused = true)]
    async fn finished_connections_return_their_output() {
        let activity = Activity::new();
        let conn = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            7
        };
        assert_eq!(
            close_when_stalled(conn, activity, Duration::from_secs(10)).await,
            Some(7)
        );
    }
}
