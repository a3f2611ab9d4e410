//! The secretvault agent: proves the pod's identity, fetches what its policies allow,
//! renders files and keeps them fresh. Tiny by design: no kube crates, one thread.
//!
//! `docs/agent.md` describes the configuration, the modes and the measured footprint.

// The agent's tokio has its own minimal feature set (see the root Cargo.toml); this
// gives it back its usual name, `tokio::select!` included.
extern crate agent_hyper_util as hyper_util;
extern crate agent_tokio as tokio;

pub mod agent;
pub mod auth;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod duration;
pub mod envfile;
pub mod files;
pub mod kv;
pub mod log;
pub mod template;
pub mod vault;
pub mod watch;
