//! The Vault-compatible HTTP API.
