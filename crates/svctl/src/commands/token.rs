//! `svctl token …`: the token auth method's create, lookup, renew and revoke endpoints.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::connect;
use crate::Error;
use crate::args::{
    HttpArgs, TokenCommand, TokenCreateArgs, TokenLookupArgs, TokenRenewArgs, TokenRevokeArgs,
};
use crate::client::Body;
use crate::output::Ui;
use crate::secret::{output_secret, print_raw_field};

pub fn run(cmd: TokenCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        TokenCommand::Create(a) => create(a, http, ui),
        TokenCommand::Lookup(a) => lookup(a, http, ui),
        TokenCommand::Renew(a) => renew(a, http, ui),
        TokenCommand::Revoke(a) => revoke(a, http, ui),
    }
}

/// The body of `auth/token/create`, with the fields the Vault CLI sends.
pub fn create_body(a: &TokenCreateArgs) -> Value {
    let mut body = Map::new();
    let mut set = |key: &str, value: Value| {
        body.insert(key.to_owned(), value);
    };
    if let Some(id) = &a.id {
        set("id", id.clone().into());
    }
    if !a.policy.is_empty() {
        set(
            "policies",
            a.policy
                .iter()
                .map(|p| p.trim().to_owned())
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if !a.metadata.is_empty() {
        let meta: Map<String, Value> = a
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        set("meta", Value::Object(meta));
    }
    if let Some(ttl) = a.ttl {
        set("ttl", ttl.to_string().into());
    }
    if let Some(max) = a.explicit_max_ttl {
        set("explicit_max_ttl", max.to_string().into());
    }
    if let Some(period) = a.period {
        set("period", period.to_string().into());
    }
    if a.orphan == Some(true) {
        set("no_parent", true.into());
    }
    if a.no_default_policy == Some(true) {
        set("no_default_policy", true.into());
    }
    if let Some(name) = &a.display_name {
        set("display_name", name.clone().into());
    }
    if a.use_limit != 0 {
        set("num_uses", a.use_limit.into());
    }
    // Batch tokens cannot be renewed, so the Vault CLI never asks for it.
    let batch = a.token_type.as_deref() == Some("batch");
    set("renewable", (!batch && a.renewable.unwrap_or(true)).into());
    if let Some(kind) = &a.token_type {
        set("type", kind.clone().into());
    }
    if let Some(alias) = &a.entity_alias {
        set("entity_alias", alias.clone().into());
    }
    Value::Object(body)
}

fn create(a: TokenCreateArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let body = create_body(&a);
    let path = match &a.role {
        Some(role) => format!("auth/token/create/{}", role.trim()),
        None => "auth/token/create".to_owned(),
    };
    let client = connect(http, ui)?;
    let secret = client
        .request_secret(Method::POST, &path, Body::Json(&body))
        .map_err(|e| Error::api("Error creating token", e))?;
    let Some(secret) = secret else {
        return Ok(());
    };
    let format = a.format.format;
    if let Some(field) = &a.field.field {
        return print_raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(&secret),
        )
        .map_err(Error::Usage);
    }
    output_secret(ui, format, &secret);
    Ok(())
}

fn lookup(a: TokenLookupArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let accessor = a.accessor.unwrap_or(false);
    let count = a.token.len();
    match (accessor, count) {
        (true, 0) => {
            return Err(Error::Usage(
                "Not enough arguments with -accessor (expected 1, got 0)".to_owned(),
            ));
        }
        (true, n) if n > 1 => {
            return Err(Error::Usage(format!(
                "Too many arguments with -accessor (expected 1, got {n})"
            )));
        }
        (false, n) if n > 1 => {
            return Err(Error::Usage(format!(
                "Too many arguments (expected 0-1, got {n})"
            )));
        }
        _ => {}
    }
    let token = a
        .token
        .first()
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let client = connect(http, ui)?;
    let result = if token.is_empty() {
        client.request_secret(Method::GET, "auth/token/lookup-self", Body::None)
    } else if accessor {
        let body = json!({ "accessor": token });
        client.request_secret(
            Method::POST,
            "auth/token/lookup-accessor",
            Body::Json(&body),
        )
    } else {
        let body = json!({ "token": token });
        client.request_secret(Method::POST, "auth/token/lookup", Body::Json(&body))
    };
    let secret = result.map_err(|e| Error::api("Error looking up token", e))?;
    let Some(secret) = secret else {
        return Ok(());
    };
    let format = a.format.format;
    if let Some(field) = &a.field.field {
        return print_raw_field(
            ui,
            format,
            secret.raw_field(field),
            field,
            "secret",
            Some(&secret),
        )
        .map_err(Error::Usage);
    }
    output_secret(ui, format, &secret);
    Ok(())
}

fn renew(a: TokenRenewArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    if a.token.len() > 1 {
        return Err(Error::Usage(format!(
            "Too many arguments (expected 1, got {})",
            a.token.len()
        )));
    }
    let token = a
        .token
        .first()
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let increment = a.increment.map(|d| d.whole_seconds()).unwrap_or(0);
    let client = connect(http, ui)?;
    let result = if token.is_empty() {
        let body = json!({ "increment": increment });
        client.request_secret(Method::PUT, "auth/token/renew-self", Body::Json(&body))
    } else if a.accessor.unwrap_or(false) {
        let body = json!({ "accessor": token, "increment": increment });
        client.request_secret(Method::POST, "auth/token/renew-accessor", Body::Json(&body))
    } else {
        let body = json!({ "token": token, "increment": increment });
        client.request_secret(Method::PUT, "auth/token/renew", Body::Json(&body))
    };
    let secret = result.map_err(|e| Error::api("Error renewing token", e))?;
    if let Some(secret) = secret {
        output_secret(ui, a.format.format, &secret);
    }
    Ok(())
}

fn revoke(a: TokenRevokeArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let self_ = a.self_.unwrap_or(false);
    let accessor = a.accessor.unwrap_or(false);
    let mode = a.mode.as_deref().unwrap_or_default();
    let count = a.token.len();
    let usage = |m: String| Err(Error::Usage(m));
    if !matches!(mode, "" | "orphan" | "path") {
        return usage(format!("Invalid mode: {mode} (use \"orphan\" or \"path\")"));
    }
    if self_ && count > 0 {
        return usage(format!(
            "Too many arguments with -self (expected 0, got {count})"
        ));
    }
    if !self_ && count > 1 {
        return usage(format!(
            "Too many arguments (expected 1 or -self, got {count})"
        ));
    }
    if !self_ && count < 1 {
        return usage(format!(
            "Not enough arguments (expected 1 or -self, got {count})"
        ));
    }
    if self_ && accessor {
        return usage("Cannot use -self with -accessor!".to_owned());
    }
    if self_ && !mode.is_empty() {
        return usage("Cannot use -self with -mode!".to_owned());
    }
    if accessor && !mode.is_empty() {
        return usage(format!("Cannot use -accessor with -mode={mode}!"));
    }
    let token = a
        .token
        .first()
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let client = connect(http, ui)?;
    let result = if self_ {
        client.request(Method::PUT, "auth/token/revoke-self", &[], Body::None)
    } else if accessor {
        let body = json!({ "accessor": token });
        client.request(
            Method::POST,
            "auth/token/revoke-accessor",
            &[],
            Body::Json(&body),
        )
    } else if mode == "orphan" {
        let body = json!({ "token": token });
        client.request(
            Method::PUT,
            "auth/token/revoke-orphan",
            &[],
            Body::Json(&body),
        )
    } else if mode == "path" {
        client.request(
            Method::PUT,
            &format!("sys/leases/revoke-prefix/{token}"),
            &[],
            Body::None,
        )
    } else {
        let body = json!({ "token": token });
        client.request(Method::PUT, "auth/token/revoke", &[], Body::Json(&body))
    };
    result.map_err(|e| Error::api("Error revoking token", e))?;
    ui.output("Success! Revoked token (if it existed)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Command, TokenCommand, parse};

    fn create_args(args: &[&str]) -> TokenCreateArgs {
        let mut argv = vec!["svctl", "token", "create"];
        argv.extend_from_slice(args);
        match parse(argv.into_iter().map(Into::into)).unwrap().command {
            Command::Token(TokenCommand::Create(a)) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_sends_what_the_vault_cli_sends() {
        let body = create_body(&create_args(&[
            "-policy=app",
            "-policy=default",
            "-ttl=1h",
            "-explicit-max-ttl=2h",
            "-display-name=ci",
            "-metadata=team=x",
            "-use-limit=5",
            "-orphan",
        ]));
        assert_eq!(
            body,
            json!({
                "policies": ["app", "default"], "ttl": "1h0m0s", "explicit_max_ttl": "2h0m0s",
                "display_name": "ci", "meta": {"team": "x"}, "num_uses": 5, "no_parent": true,
                "renewable": true,
            })
        );
    }

    #[test]
    fn batch_tokens_are_not_renewable() {
        let body = create_body(&create_args(&["-type=batch"]));
        assert_eq!(body, json!({"renewable": false, "type": "batch"}));
        let body = create_body(&create_args(&["-renewable=false"]));
        assert_eq!(body, json!({"renewable": false}));
    }
}
