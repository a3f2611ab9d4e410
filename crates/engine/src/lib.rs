//! The vault engine.
//!
//! Everything that decides what a request means lives here, free of HTTP:
//! - [`storage`]: the backend trait, the embedded redb backend and a conformance suite;
//! - [`crypto`]: root key → keyring → the encrypting [`crypto::Barrier`] over a backend;
//! - [`kv`], [`transit`], [`token`], [`policy`], [`identity`], [`audit`]: the Vault subsystems;
//! - [`auth`]: auth methods that log clients in (Kubernetes);
//! - [`seal`]: sealing values for Git (HPKE to the cluster's sealing key) and unsealing them;
//! - [`watch`]: the in-memory change log and limits behind `sys/secretvault/watch`;
//! - [`logical`]: Vault's request/response model;
//! - [`vault::Vault`]: the router that authenticates, authorises, audits and dispatches
//!   each request; [`sys`] holds its `sys/` endpoints.
//!
//! The HTTP server (crate `secretvault-server`) is thin glue that turns HTTP into
//! [`logical::Request`]s and [`logical::Response`]s back into HTTP.

pub mod audit;
pub mod auth;
pub mod crypto;
pub mod identity;
pub mod json_out;
pub mod kv;
pub mod logical;
pub mod policy;
pub mod seal;
pub mod storage;
pub mod sys;
pub mod token;
pub mod transit;
pub mod util;
pub mod vault;
pub mod watch;

pub use logical::Operation;

/// Parsers that are otherwise private, for the fuzz targets (`fuzz/`) and the property
/// tests (`tests/parsers_prop.rs`). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::transit::ciphertext::{format as format_ciphertext, parse as parse_ciphertext};
}
