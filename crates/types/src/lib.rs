//! Types shared across secretvault's binaries, kept free of client and runtime
//! dependencies so the agent and the CLI link them cheaply.
//!
//! Filled by the issues that need them: the custom resources (operator issue) and the
//! injector ↔ agent contract (agent and injector issues).

/// The HTTP header Vault clients send their token in.
pub const TOKEN_HEADER: &str = "X-Vault-Token";

/// The default address of a dev server, as `VAULT_ADDR` would hold it.
pub const DEFAULT_DEV_ADDR: &str = "http://127.0.0.1:8200";
