//! Vault's request/response model, independent of HTTP.

use serde::{Deserialize, Serialize};

/// What a request does, as Vault's ACLs see it.
///
/// HTTP maps onto these as Vault does: GET → `Read` (or `List` with `?list=true`),
/// `LIST` → `List`, POST/PUT → `Create` when nothing exists at the path and `Update`
/// otherwise (for backends that make the distinction), PATCH → `Patch`, DELETE → `Delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    /// The name Vault uses in audit logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
