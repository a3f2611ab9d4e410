//! The agent's loop: log in, render every secret, then keep the token alive and the files
//! fresh (refresh interval, change notifications, retries with backoff) until told to
//! stop. One task does all of it; only the watch long-poll and post-change commands run
//! beside it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::sync::watch as channel;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::auth::{self, NextStep, Token, TokenText};
use crate::backoff::{Backoff, jitter};
use crate::config::{Auth, Config, Mode, SecretSpec};
use crate::duration::display as dur;
use crate::envfile::render_env_file;
use crate::files::{self, WriteOutcome};
use crate::kv::{self, Mounts, ReadError, Target};
use crate::template::{RenderOptions, SecretSource};
use crate::vault::VaultClient;
use crate::watch::{self, Initial, WatchEvent};

/// How many times one render may stop to fetch a secret it had not read yet (templates
/// whose paths are computed, so they could not be fetched up front).
const MAX_FETCH_ROUNDS: usize = 64;

/// Where one secret stands.
#[derive(Debug)]
pub struct SecretState {
    /// Needs reading and rendering at `retry_at`.
    pending: bool,
    retry_at: Instant,
    backoff: Backoff,
    /// Rendered (and written, or already up to date) at least once.
    rendered: bool,
    /// The KV v2 data paths its last render read: what to watch for it.
    deps: BTreeSet<String>,
    last_error: Option<String>,
}

/// Why one secret was not rendered.
enum Failure {
    /// The server is unreachable or failing: stop this pass, back off.
    ServerWide(String),
    /// The token is no longer accepted: log in again, then retry.
    TokenInvalid,
    /// This secret alone: its message names the secret's problem.
    Secret(String),
}

/// One read of a pass: what was read (when the mount lookup got that far) and how it went.
struct Fetched {
    target: Option<Target>,
    result: Result<Value, ReadError>,
}

impl Fetched {
    /// The KV v2 data path to watch for this read: one that was read, or that does not
    /// exist yet (so its creation is noticed); not one the token may not read.
    fn watch_path(&self) -> Option<String> {
        match &self.result {
            Ok(_) | Err(ReadError::NotFound { .. }) => self.target.as_ref()?.kv2_data_path.clone(),
            Err(_) => None,
        }
    }
}

/// One pass's reads: each path is read once per pass, however many secrets use it.
#[derive(Default)]
struct Pass {
    fetched: HashMap<String, Fetched>,
    token_confirmed: bool,
}

pub struct Agent {
    cfg: Arc<Config>,
    mode: Mode,
    client: VaultClient,
    mounts: Mounts,
    token: Option<Token>,
    /// When to log in (again): at start, after a refused renewal or token, on relogin.
    login_at: Option<Instant>,
    auth_backoff: Backoff,
    last_auth_error: Option<String>,
    server_backoff: Backoff,
    secrets: Vec<SecretState>,
    next_refresh: Instant,
    token_tx: channel::Sender<Option<TokenText>>,
    paths_tx: channel::Sender<BTreeSet<String>>,
    events_rx: Option<mpsc::Receiver<WatchEvent>>,
    watch_started: bool,
    commands: Vec<JoinHandle<()>>,
    ready_written: bool,
}

impl Agent {
    pub fn new(cfg: Arc<Config>, mode: Mode, client: VaultClient) -> Agent {
        let now = Instant::now();
        let secrets = cfg
            .secrets
            .iter()
            .map(|_| SecretState {
                pending: true,
                retry_at: now,
                backoff: Backoff::new(),
                rendered: false,
                deps: BTreeSet::new(),
                last_error: None,
            })
            .collect();
        Agent {
            next_refresh: now + jitter(cfg.refresh_interval, 0.1),
            cfg,
            mode,
            client,
            mounts: Mounts::default(),
            token: None,
            login_at: Some(now),
            auth_backoff: Backoff::new(),
            last_auth_error: None,
            server_backoff: Backoff::new(),
            secrets,
            token_tx: channel::channel(None).0,
            paths_tx: channel::channel(BTreeSet::new()).0,
            events_rx: None,
            watch_started: false,
            commands: Vec::new(),
            ready_written: false,
        }
    }

    fn all_rendered(&self) -> bool {
        self.secrets.iter().all(|s| s.rendered)
    }

    /// Runs until every secret is rendered (init mode) or forever (sidecar mode). Safe to
    /// drop at any await: files are only ever replaced whole.
    pub async fn run(&mut self) {
        if self.mode == Mode::Sidecar {
            // A restarted sidecar on a kept volume must not look ready before it renders.
            match std::fs::remove_file(&self.cfg.ready_file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %self.cfg.ready_file.display(), error = %e, "could not remove the previous ready file")
                }
            }
        }
        loop {
            let now = Instant::now();
            self.keep_token(now).await;
            if self.token.is_some() && !self.watch_started && self.mode == Mode::Sidecar {
                self.start_watch().await;
            }
            let now = Instant::now();
            if self.mode == Mode::Sidecar && now >= self.next_refresh {
                debug!("refresh interval: re-reading every secret");
                for s in &mut self.secrets {
                    s.pending = true;
                    s.retry_at = s.retry_at.min(now);
                }
                self.next_refresh = now + jitter(self.cfg.refresh_interval, 0.1);
            }
            if self.token.is_some() {
                self.render_due().await;
            }
            self.commands.retain(|h| !h.is_finished());
            if self.all_rendered() && !self.ready_written {
                self.ready_written = true;
                info!(secrets = self.secrets.len(), "every secret is rendered");
                if let Err(e) = files::write_atomic(&self.cfg.ready_file, b"ready\n", 0o644) {
                    warn!(file = %self.cfg.ready_file.display(), error = %e, "could not write the ready file; `secretvault-agent probe` will not see the agent as ready");
                }
            }
            if self.mode == Mode::Init && self.all_rendered() {
                for h in self.commands.drain(..) {
                    let _ = h.await;
                }
                return;
            }
            let wake = self.next_wake();
            let events = self.events_rx.as_mut();
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                Some(ev) = async { match events { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    self.on_watch_event(ev);
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + Duration::from_secs(3600);
        if self.mode == Mode::Sidecar {
            wake = wake.min(self.next_refresh);
        }
        match (self.login_at, &self.token) {
            (Some(at), _) => wake = wake.min(at),
            (None, Some(t)) => match t.next_step() {
                NextStep::Renew(at) | NextStep::Relogin(at) => wake = wake.min(at),
                NextStep::Nothing => {}
            },
            (None, None) => {}
        }
        if self.token.is_some() {
            for s in self.secrets.iter().filter(|s| s.pending) {
                wake = wake.min(s.retry_at);
            }
        }
        wake
    }

    fn on_watch_event(&mut self, ev: WatchEvent) {
        let now = Instant::now();
        match ev {
            WatchEvent::Reset => {
                info!("change notifications were interrupted; re-reading every secret");
                for s in &mut self.secrets {
                    s.pending = true;
                    s.retry_at = now;
                }
            }
            WatchEvent::Changed(paths) => {
                for (spec, s) in self.cfg.secrets.iter().zip(&mut self.secrets) {
                    if paths.iter().any(|p| s.deps.contains(p)) {
                        debug!(secret = %spec.name, "a path it reads changed");
                        s.pending = true;
                        s.retry_at = now;
                    }
                }
            }
        }
    }

    /// Logs in, renews, or logs in again, as the token's lifetime requires.
    async fn keep_token(&mut self, now: Instant) {
        if let Some(t) = &self.token
            && t.expires_at().is_some_and(|e| e <= now)
        {
            info!("the vault token expired; logging in again");
            self.token = None;
            self.login_at = Some(self.login_at.map_or(now, |at| at.min(now)));
        }
        if let Some(at) = self.login_at {
            if at <= now {
                self.login().await;
            }
            return;
        }
        let Some(t) = self.token.clone() else {
            self.login_at = Some(now);
            return;
        };
        match t.next_step() {
            NextStep::Renew(at) if at <= now => match auth::renew(&self.client, &t).await {
                Ok(renewed) => {
                    debug!(ttl = %dur(renewed.ttl), "renewed the vault token");
                    if renewed.ttl < renewed.login_ttl {
                        info!(ttl = %dur(renewed.ttl), "the vault token nears its max TTL; will log in again before it expires");
                    }
                    self.token = Some(renewed);
                }
                Err(e) => {
                    warn!(error = %e, "renewing the vault token failed; logging in again");
                    self.login_at = Some(now);
                    self.login().await;
                }
            },
            NextStep::Relogin(at) if at <= now => {
                debug!("the vault token cannot be extended further; logging in again");
                self.login_at = Some(now);
                self.login().await;
            }
            _ => {}
        }
    }

    async fn login(&mut self) {
        match auth::login(&self.client, &self.cfg.auth).await {
            Ok(token) => {
                let how = match &self.cfg.auth {
                    Auth::Kubernetes { role, mount, .. } => {
                        format!("kubernetes (auth/{mount}, role {role})")
                    }
                    Auth::TokenFile { path } => format!("token file {}", path.display()),
                };
                info!(
                    method = %how,
                    ttl = %if token.ttl.is_zero() { "none".to_string() } else { dur(token.ttl) },
                    renewable = token.renewable,
                    "logged in"
                );
                self.token_tx.send_replace(Some(token.text.clone()));
                self.token = Some(token);
                self.login_at = None;
                self.auth_backoff.reset();
                self.last_auth_error = None;
            }
            Err(e) => {
                let delay = self.auth_backoff.next_delay();
                error!(error = %e, retry_in = %dur(delay), "login failed; the files keep their last content");
                self.last_auth_error = Some(e.to_string());
                self.login_at = Some(Instant::now() + delay);
            }
        }
    }

    /// Takes the watch index before the first reads and starts the long-poll task.
    async fn start_watch(&mut self) {
        self.watch_started = true;
        let Some(token) = self.token.as_ref().map(|t| t.text.clone()) else {
            return;
        };
        let mut paths = BTreeSet::new();
        for spec in &self.cfg.secrets {
            for raw in literal_paths(spec) {
                if let Ok(target) = self.mounts.resolve(&self.client, &token, &raw).await
                    && let Some(p) = target.kv2_data_path
                {
                    paths.insert(p);
                }
            }
        }
        let mut list: Vec<String> = paths.iter().take(watch::MAX_PATHS).cloned().collect();
        let index = match watch::initial_index(&self.client, &token, &mut list).await {
            Initial::Unsupported => return,
            Initial::Index(i) => Some(i),
            Initial::Later => None,
        };
        self.paths_tx.send_replace(paths);
        let (tx, rx) = mpsc::channel(16);
        self.events_rx = Some(rx);
        tokio::spawn(watch::run(
            self.client.clone(),
            self.token_tx.subscribe(),
            self.paths_tx.subscribe(),
            index,
            tx,
        ));
    }

    /// Reads and renders every secret that is due; writes those whose content changed.
    async fn render_due(&mut self) {
        let now = Instant::now();
        let due: Vec<usize> = (0..self.secrets.len())
            .filter(|&i| self.secrets[i].pending && self.secrets[i].retry_at <= now)
            .collect();
        if due.is_empty() {
            return;
        }
        let mut pass = Pass::default();
        let mut server_failed = false;
        for (n, &i) in due.iter().enumerate() {
            let cfg = self.cfg.clone();
            let spec = &cfg.secrets[i];
            match self.render_secret(spec, &mut pass).await {
                Ok((content, deps)) => self.store(i, spec, content, deps),
                Err(Failure::ServerWide(msg)) => {
                    server_failed = true;
                    let delay = self.server_backoff.next_delay();
                    warn!(error = %msg, retry_in = %dur(delay), "the server is unavailable; the files keep their last content");
                    let at = Instant::now() + delay;
                    for &j in &due[n..] {
                        self.secrets[j].retry_at = at;
                        self.secrets[j].last_error = Some(msg.clone());
                    }
                    break;
                }
                Err(Failure::TokenInvalid) => {
                    info!("the server no longer accepts the vault token; logging in again");
                    self.token = None;
                    self.login_at = Some(Instant::now());
                    break;
                }
                Err(Failure::Secret(msg)) => {
                    let s = &mut self.secrets[i];
                    let delay = s.backoff.next_delay();
                    s.retry_at = Instant::now() + delay;
                    warn!(
                        secret = %spec.name,
                        file = %spec.file.display(),
                        error = %msg,
                        retry_in = %dur(delay),
                        "secret not rendered; its file keeps its last content"
                    );
                    s.last_error = Some(msg);
                }
            }
        }
        if !server_failed {
            self.server_backoff.reset();
        }
        let watched: BTreeSet<String> = self
            .secrets
            .iter()
            .flat_map(|s| s.deps.iter().cloned())
            .collect();
        self.paths_tx.send_if_modified(|cur| {
            if *cur == watched {
                false
            } else {
                *cur = watched;
                true
            }
        });
    }

    fn store(&mut self, i: usize, spec: &SecretSpec, content: String, deps: BTreeSet<String>) {
        let s = &mut self.secrets[i];
        match files::write_if_changed(&spec.file, content.as_bytes(), spec.perms) {
            Ok(outcome) => {
                if outcome == WriteOutcome::Written {
                    info!(secret = %spec.name, file = %spec.file.display(), "wrote the secret's file");
                    if let Some(cmd) = &spec.command {
                        self.commands.push(tokio::spawn(files::run_command(
                            spec.name.clone(),
                            cmd.clone(),
                            self.cfg.command_timeout,
                        )));
                    }
                } else {
                    debug!(secret = %spec.name, "unchanged");
                }
                if s.last_error.take().is_some() && s.rendered {
                    info!(secret = %spec.name, "secret rendered again");
                }
                s.pending = false;
                s.rendered = true;
                s.backoff.reset();
                s.deps = deps;
            }
            Err(e) => {
                let delay = s.backoff.next_delay();
                s.retry_at = Instant::now() + delay;
                let msg = format!(
                    "cannot write {}: {e}; make sure its directory exists or can be created and is writable by the agent",
                    spec.file.display()
                );
                warn!(secret = %spec.name, error = %msg, retry_in = %dur(delay), "secret not written");
                s.last_error = Some(msg);
                s.deps = deps;
            }
        }
    }

    async fn render_secret(
        &mut self,
        spec: &SecretSpec,
        pass: &mut Pass,
    ) -> Result<(String, BTreeSet<String>), Failure> {
        let Some(token) = self.token.as_ref().map(|t| t.text.clone()) else {
            return Err(Failure::TokenInvalid);
        };
        let Some(template) = &spec.template else {
            let raw = spec.path.clone().unwrap_or_default();
            self.fetch(&token, &raw, pass).await?;
            let Some(fetched) = pass.fetched.get(&raw) else {
                return Err(Failure::Secret(format!("{raw:?} was not read")));
            };
            let deps: BTreeSet<String> = fetched.watch_path().into_iter().collect();
            return match (&fetched.target, &fetched.result) {
                (Some(target), Ok(body)) => match kv::secret_data(target, body) {
                    Some(data) => Ok((render_env_file(data), deps)),
                    None => Err(Failure::Secret(format!(
                        "{:?} holds no key/value data to write as an env file; point path at a KV secret, or give a template",
                        target.read_path
                    ))),
                },
                (_, Err(e)) => Err(Failure::Secret(e.to_string())),
                (None, Ok(_)) => Err(Failure::Secret(format!("{raw:?} was not read"))),
            };
        };
        // Fetch the literal paths up front; computed ones are fetched as the render asks.
        for raw in template.secret_paths() {
            self.fetch(&token, &raw, pass).await?;
        }
        let opts = RenderOptions {
            error_on_missing_key: spec.error_on_missing_key,
            ..RenderOptions::default()
        };
        for _ in 0..MAX_FETCH_ROUNDS {
            let mut source = PassSource {
                fetched: &pass.fetched,
                missing: Vec::new(),
                requested: Vec::new(),
                failed: None,
            };
            let result = template.render(&mut source, &opts);
            let PassSource {
                missing,
                requested,
                failed,
                ..
            } = source;
            let deps: BTreeSet<String> = requested
                .iter()
                .filter_map(|raw| pass.fetched.get(raw).and_then(Fetched::watch_path))
                .collect();
            match result {
                Ok(text) => return Ok((text, deps)),
                Err(_) if !missing.is_empty() => {
                    for raw in missing {
                        self.fetch(&token, &raw, pass).await?;
                    }
                }
                Err(_) if failed.is_some() => {
                    return Err(Failure::Secret(
                        failed.map(|e| e.to_string()).unwrap_or_default(),
                    ));
                }
                Err(e) => return Err(Failure::Secret(e.to_string())),
            }
        }
        Err(Failure::Secret(format!(
            "the template reads more than {MAX_FETCH_ROUNDS} secrets whose paths depend on other secrets; simplify it"
        )))
    }

    /// Reads `raw` into the pass, once. Server-wide failures and a refused token abort.
    async fn fetch(
        &mut self,
        token: &TokenText,
        raw: &str,
        pass: &mut Pass,
    ) -> Result<(), Failure> {
        if pass.fetched.contains_key(raw) {
            return Ok(());
        }
        let target = match self.mounts.resolve(&self.client, token, raw).await {
            Ok(t) => t,
            Err(e) if e.is_server_wide() => return Err(Failure::ServerWide(e.to_string())),
            Err(e) => {
                pass.fetched.insert(
                    raw.to_string(),
                    Fetched {
                        target: None,
                        result: Err(e),
                    },
                );
                return Ok(());
            }
        };
        let result = kv::read(&self.client, token, &target).await;
        match &result {
            Err(e) if e.is_server_wide() => return Err(Failure::ServerWide(e.to_string())),
            // A 403 also means "bad token": tell the two apart once per pass.
            Err(ReadError::Denied { .. }) if !pass.token_confirmed => {
                match auth::is_valid(&self.client, token).await {
                    Ok(true) => pass.token_confirmed = true,
                    Ok(false) => return Err(Failure::TokenInvalid),
                    Err(e) => return Err(Failure::ServerWide(e.to_string())),
                }
            }
            _ => {}
        }
        pass.fetched.insert(
            raw.to_string(),
            Fetched {
                target: Some(target),
                result,
            },
        );
        Ok(())
    }

    /// Why secrets are not rendered yet, one line each (for the init deadline message).
    pub fn unrendered(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.token.is_none()
            && let Some(e) = &self.last_auth_error
        {
            out.push(format!("login: {e}"));
        }
        for (spec, s) in self.cfg.secrets.iter().zip(&self.secrets) {
            if !s.rendered {
                out.push(format!(
                    "secret {:?}: {}",
                    spec.name,
                    s.last_error
                        .as_deref()
                        .unwrap_or("not attempted yet (no token)")
                ));
            }
        }
        out
    }

    /// Revokes the token (shutdown with `revoke_on_shutdown`).
    pub async fn revoke(&mut self) {
        let Some(t) = self.token.take() else {
            return;
        };
        match auth::revoke(&self.client, &t.text, Duration::from_secs(2)).await {
            Ok(()) => info!("revoked the vault token"),
            Err(e) => warn!(error = %e, "could not revoke the vault token"),
        }
    }
}

/// The paths a secret reads that are known without rendering.
fn literal_paths(spec: &SecretSpec) -> Vec<String> {
    match (&spec.template, &spec.path) {
        (Some(t), _) => t.secret_paths(),
        (None, Some(p)) => vec![p.clone()],
        (None, None) => Vec::new(),
    }
}

/// The template's view of one pass: secrets already read, and a note of those it asked
/// for that were not (so the agent reads them and renders again).
struct PassSource<'a> {
    fetched: &'a HashMap<String, Fetched>,
    missing: Vec<String>,
    requested: Vec<String>,
    failed: Option<ReadError>,
}

impl SecretSource for PassSource<'_> {
    fn secret(&mut self, path: &str) -> Result<Value, String> {
        if !self.requested.iter().any(|p| p == path) {
            self.requested.push(path.to_string());
        }
        match self.fetched.get(path).map(|f| &f.result) {
            Some(Ok(body)) => Ok(body.clone()),
            Some(Err(e)) => {
                self.failed = Some(e.clone());
                Err(e.to_string())
            }
            None => {
                self.missing.push(path.to_string());
                Err(format!("{path:?} not read yet"))
            }
        }
    }
}
