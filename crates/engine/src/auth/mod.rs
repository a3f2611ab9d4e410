//! Auth methods that log clients in and issue tokens, beside the token store's own
//! `auth/token/` backend ([`crate::token`]).
//!
//! - [`kubernetes`]: Vault's Kubernetes auth method at `auth/kubernetes/` — a pod logs in
//!   with its ServiceAccount token and gets a vault token with its role's policies.

pub mod kubernetes;
