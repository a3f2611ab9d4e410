//! The Vault-compatible HTTP API over the secretvault engine, and the dev-mode runner.
//!
//! - [`http`]: decode HTTP into engine requests and encode replies (thin glue);
//! - [`listener`]: the accept loop — timeouts, TLS, graceful shutdown;
//! - [`tls`]: certificates re-read when their files change;
//! - [`watchdog`]: the header-read deadline, one timer per connection;
//! - [`dev`]: the whole vault on one machine (`secretvault-operator dev`).

pub mod dev;
pub mod http;
pub mod listener;
pub mod tls;
pub mod watchdog;

pub use listener::{ServerConfig, serve};
