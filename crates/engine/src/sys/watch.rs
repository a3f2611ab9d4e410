//! `sys/secretvault/watch`: the agent's long poll for changes to the secrets it renders
//! (a secretvault extension; see docs/compatibility.md).
//!
//! The router lets any valid token in (the path skips the ACL check) and audits the
//! request before the wait and the response after it; this handler then insists on
//! `read` for every watched path, exactly as reading it would, so a watch only tells a
//! client about secrets it may read.

use serde_json::{Map, json};

use crate::logical::{ApiError, ApiResult, Operation, Request, Response};
use crate::policy::Acl;
use crate::token::Caller;
use crate::vault::Vault;
use crate::watch::WatchRequest;

impl Vault {
    pub(crate) async fn watch(
        &self,
        req: &Request,
        caller: &Caller,
        acl: &Acl,
    ) -> ApiResult<Response> {
        let request = WatchRequest::parse(&req.data)?;
        // A plain GET of the path carries no body fields, so none are checked here either.
        let no_fields = Map::new();
        let denied: Vec<String> = request
            .paths
            .iter()
            .enumerate()
            .filter(|(_, path)| {
                !acl.authorize(path, Operation::Read, Some(&no_fields))
                    .allowed
            })
            .map(|(i, path)| format!("paths[{i}] {path:?}: no read capability"))
            .collect();
        if !denied.is_empty() {
            let mut errors = vec!["permission denied".to_string()];
            errors.extend(denied);
            return Err(ApiError {
                status: 403,
                errors,
                retry_after: None,
            });
        }
        // Held across the wait; dropping the request (client gone) frees the slot.
        let _permit = self.watch_limits.acquire(caller.entry.accessor())?;
        let names = request.names();
        let outcome = self
            .kv
            .changes()
            .wait(request.index.as_deref(), &names, request.wait)
            .await;
        let changed: Vec<&str> = outcome
            .changed
            .iter()
            .filter_map(|i| request.paths.get(*i))
            .map(String::as_str)
            .collect();
        Ok(Response::data(json!({
            "index": outcome.index,
            "changed": changed,
            "reset": outcome.reset,
        })))
    }
}
