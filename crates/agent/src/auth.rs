//! Getting and keeping a vault token: Kubernetes login with the pod's ServiceAccount
//! token (re-read at every login: the kubelet rotates it), or a token read from a file;
//! renewal at two thirds of the TTL; a fresh login when renewal stops extending it.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::Auth;
use crate::vault::{ApiResponse, TransportError, VaultClient};

const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// A vault token. Its text is zeroized when the last copy is dropped.
pub type TokenText = Arc<Zeroizing<String>>;

/// A token and what the server said about its lifetime.
#[derive(Clone)]
pub struct Token {
    pub text: TokenText,
    /// The TTL the server granted last (zero: the token does not expire).
    pub ttl: Duration,
    pub renewable: bool,
    /// When `ttl` was granted.
    pub granted_at: Instant,
    /// The TTL granted at login: a renewal granting less has hit the max TTL.
    pub login_ttl: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

/// What to do with a token next, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// The token does not expire.
    Nothing,
    Renew(Instant),
    /// Renewal cannot extend it (not renewable, or capped by its max TTL): log in again.
    Relogin(Instant),
}

impl Token {
    /// Renew at two thirds of the TTL; once a renewal granted less than the login did, the
    /// max TTL is near, so log in again at two thirds of what is left instead.
    pub fn next_step(&self) -> NextStep {
        if self.ttl.is_zero() {
            return NextStep::Nothing;
        }
        let at = self.granted_at + self.ttl * 2 / 3;
        if !self.renewable || self.ttl < self.login_ttl {
            NextStep::Relogin(at)
        } else {
            NextStep::Renew(at)
        }
    }

    pub fn expires_at(&self) -> Option<Instant> {
        (!self.ttl.is_zero()).then(|| self.granted_at + self.ttl)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(
        "cannot read the ServiceAccount token {path}: {reason}; mount a projected token there or set auth.token_path"
    )]
    JwtFile { path: String, reason: String },
    #[error(
        "cannot read the vault token file {path}: {reason}; write a vault token to it or fix auth.path"
    )]
    TokenFile { path: String, reason: String },
    #[error("Kubernetes login as role {role:?} at auth/{mount}/login was refused ({detail}){hint}")]
    LoginRefused {
        role: String,
        mount: String,
        detail: String,
        hint: &'static str,
    },
    #[error("the token in {path} was refused ({detail}); put a valid vault token in the file")]
    TokenRefused { path: String, detail: String },
    #[error("the server's answer to {what} has no usable {field}")]
    Malformed {
        what: &'static str,
        field: &'static str,
    },
}

/// Logs in with the configured method.
pub async fn login(client: &VaultClient, auth: &Auth) -> Result<Token, AuthError> {
    match auth {
        Auth::Kubernetes {
            role,
            token_path,
            mount,
        } => {
            let jwt = read_secret_file(token_path).map_err(|reason| AuthError::JwtFile {
                path: token_path.display().to_string(),
                reason,
            })?;
            let body = json!({ "role": role, "jwt": jwt.as_str() });
            let resp = client
                .send(
                    Method::POST,
                    &format!("auth/{mount}/login"),
                    None,
                    Some(&body),
                    AUTH_TIMEOUT,
                )
                .await?;
            // The body held the JWT; serde_json cannot zeroize, so at least drop it now.
            drop(body);
            if !resp.ok() {
                return Err(AuthError::LoginRefused {
                    role: role.clone(),
                    mount: mount.clone(),
                    detail: resp.describe(),
                    hint: login_hint(&resp),
                });
            }
            token_from_auth(&resp.body["auth"], "the login")
        }
        Auth::TokenFile { path } => {
            let text = read_secret_file(path).map_err(|reason| AuthError::TokenFile {
                path: path.display().to_string(),
                reason,
            })?;
            let text: TokenText = Arc::new(text);
            let resp = client
                .send(
                    Method::GET,
                    "auth/token/lookup-self",
                    Some(&text),
                    None,
                    AUTH_TIMEOUT,
                )
                .await?;
            if !resp.ok() {
                return Err(AuthError::TokenRefused {
                    path: path.display().to_string(),
                    detail: resp.describe(),
                });
            }
            let data = &resp.body["data"];
            let ttl = Duration::from_secs(data["ttl"].as_u64().unwrap_or(0));
            Ok(Token {
                text,
                ttl,
                renewable: data["renewable"].as_bool().unwrap_or(false),
                granted_at: Instant::now(),
                login_ttl: ttl,
            })
        }
    }
}

fn login_hint(resp: &ApiResponse) -> &'static str {
    let text = resp.errors().join(" ");
    if text.contains("invalid role name") {
        "; create the role (auth/kubernetes/role/<name>) or fix auth.role"
    } else if text.contains("not authorized") {
        "; the role's bound_service_account_names/namespaces must match the pod's service account"
    } else if text.contains("audience") {
        "; request the projected token with the role's audience (serviceAccountToken.audience)"
    } else if resp.status == 403 {
        "; check that the server trusts the cluster's ServiceAccount signing keys (auth/kubernetes/config)"
    } else {
        ""
    }
}

/// Renews the token; the answer's TTL replaces the old one.
pub async fn renew(client: &VaultClient, token: &Token) -> Result<Token, String> {
    let resp = client
        .send(
            Method::POST,
            "auth/token/renew-self",
            Some(&token.text),
            Some(&json!({})),
            AUTH_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !resp.ok() {
        return Err(resp.describe());
    }
    let auth = &resp.body["auth"];
    let ttl = auth["lease_duration"]
        .as_u64()
        .map(Duration::from_secs)
        .ok_or("the renewal answer has no auth.lease_duration")?;
    Ok(Token {
        text: token.text.clone(),
        ttl,
        renewable: auth["renewable"].as_bool().unwrap_or(false),
        granted_at: Instant::now(),
        login_ttl: token.login_ttl,
    })
}

/// Whether the server still accepts the token (`lookup-self`). A transport error is
/// "don't know".
pub async fn is_valid(client: &VaultClient, token: &TokenText) -> Result<bool, TransportError> {
    let resp = client
        .send(
            Method::GET,
            "auth/token/lookup-self",
            Some(token),
            None,
            AUTH_TIMEOUT,
        )
        .await?;
    Ok(resp.ok())
}

/// Revokes the token (on shutdown, when configured).
pub async fn revoke(
    client: &VaultClient,
    token: &TokenText,
    timeout: Duration,
) -> Result<(), String> {
    let resp = client
        .send(
            Method::POST,
            "auth/token/revoke-self",
            Some(token),
            Some(&json!({})),
            timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
    if resp.ok() {
        Ok(())
    } else {
        Err(resp.describe())
    }
}

fn token_from_auth(auth: &Value, what: &'static str) -> Result<Token, AuthError> {
    let text = auth["client_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Malformed {
            what,
            field: "auth.client_token",
        })?;
    let ttl = Duration::from_secs(auth["lease_duration"].as_u64().unwrap_or(0));
    Ok(Token {
        text: Arc::new(Zeroizing::new(text.to_string())),
        ttl,
        renewable: auth["renewable"].as_bool().unwrap_or(false),
        granted_at: Instant::now(),
        login_ttl: ttl,
    })
}

/// Reads a token file, trimmed; refuses an empty one.
fn read_secret_file(path: &std::path::Path) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| e.to_string())?);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(ttl: u64, login_ttl: u64, renewable: bool) -> Token {
        Token {
            text: Arc::new(Zeroizing::new("t".into())),
            ttl: Duration::from_secs(ttl),
            renewable,
            granted_at: Instant::now(),
            login_ttl: Duration::from_secs(login_ttl),
        }
    }

    #[test]
    fn renews_at_two_thirds_then_logs_in_again_near_max_ttl() {
        let t = token(3600, 3600, true);
        assert_eq!(
            t.next_step(),
            NextStep::Renew(t.granted_at + Duration::from_secs(2400))
        );
        let capped = token(600, 3600, true);
        assert_eq!(
            capped.next_step(),
            NextStep::Relogin(capped.granted_at + Duration::from_secs(400))
        );
        let fixed = token(30, 30, false);
        assert_eq!(
            fixed.next_step(),
            NextStep::Relogin(fixed.granted_at + Duration::from_secs(20))
        );
        assert_eq!(token(0, 0, false).next_step(), NextStep::Nothing);
    }
}
