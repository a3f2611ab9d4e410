//! The fixed mount table, as `sys/mounts`, `sys/auth` and `sys/internal/ui/mounts` show it.
//!
//! secretvault's mounts are fixed (KV v2 at `secret/`, transit at `transit/`, plus `sys/`,
//! `identity/` and the token auth method); their accessors and UUIDs are derived from the cluster id made on
//! first start, so they stay the same across restarts.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::MountKind;
use crate::crypto::{Barrier, hmac_sha256};
use crate::logical::ApiResult;
use crate::storage::Precondition;
use crate::token::TOKEN_MOUNT_ACCESSOR;

const CLUSTER_KEY: &str = "sys/cluster";

/// API path prefixes and the subsystem serving each, in match order.
pub(super) fn route_prefixes() -> &'static [(&'static str, MountKind)] {
    &[
        ("sys/", MountKind::Sys),
        ("auth/token/", MountKind::Token),
        ("auth/kubernetes/", MountKind::Kubernetes),
        ("identity/", MountKind::Identity),
        ("secret/", MountKind::Kv),
        ("transit/", MountKind::Transit),
    ]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct MountInfo {
    pub path: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub accessor: String,
    pub uuid: String,
    pub options: Value,
    pub auth: bool,
}

impl MountInfo {
    pub fn json(&self) -> Value {
        let mut config =
            json!({ "default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0 });
        if self.auth {
            config["token_type"] = json!("default-service");
        }
        // Headers Vault passes through to these backends, as its mount table shows.
        match self.kind {
            "identity" => config["passthrough_request_headers"] = json!(["Authorization"]),
            "system" => config["passthrough_request_headers"] = json!(["Accept"]),
            _ => {}
        }
        let mut mount = json!({
            "accessor": self.accessor,
            "config": config,
            "description": self.description,
            "external_entropy_access": false,
            "local": false,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.secretvault", env!("CARGO_PKG_VERSION")),
            "running_sha256": "",
            "seal_wrap": false,
            "type": self.kind,
            "uuid": self.uuid,
        });
        if matches!(self.kind, "kv" | "kubernetes" | "transit") {
            mount["deprecation_status"] = json!("supported");
        }
        if self.kind == "system" {
            // Vault seal-wraps its own system mount.
            mount["seal_wrap"] = json!(true);
        }
        mount
    }
}

impl ClusterInfo {
    pub(super) async fn load_or_create(barrier: &Barrier) -> ApiResult<Self> {
        if let Some((bytes, _)) = barrier.get(CLUSTER_KEY).await?
            && let Ok(info) = serde_json::from_slice(&bytes)
        {
            return Ok(info);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let info = ClusterInfo {
            name: format!("secretvault-cluster-{}", &id[..8]),
            id,
        };
        let bytes = serde_json::to_vec(&info).map_err(crate::logical::ApiError::internal)?;
        match barrier.put(CLUSTER_KEY, &bytes, Precondition::Absent).await {
            Ok(_) => Ok(info),
            // Another replica made it first; theirs wins.
            Err(_) => match barrier.get(CLUSTER_KEY).await? {
                Some((bytes, _)) => serde_json::from_slice(&bytes).map_err(|e| {
                    crate::logical::ApiError::internal(format!("cluster record is corrupt: {e}"))
                }),
                None => Ok(info),
            },
        }
    }

    fn derived(&self, label: &str, len: usize) -> String {
        crate::util::hex(&hmac_sha256(self.id.as_bytes(), label.as_bytes()))[..len].to_string()
    }

    fn uuid_for(&self, label: &str) -> String {
        let h = self.derived(label, 32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Secrets-engine mounts, in path order.
    pub fn secret_mounts(&self) -> Vec<MountInfo> {
        vec![
            MountInfo {
                path: "identity/",
                kind: "identity",
                description: "identity store",
                accessor: format!("identity_{}", self.derived("identity/", 8)),
                uuid: self.uuid_for("identity/"),
                options: Value::Null,
                auth: false,
            },
            MountInfo {
                path: "secret/",
                kind: "kv",
                description: "key/value secret storage",
                accessor: format!("kv_{}", self.derived("secret/", 8)),
                uuid: self.uuid_for("secret/"),
                options: json!({ "version": "2" }),
                auth: false,
            },
            MountInfo {
                path: "sys/",
                kind: "system",
                description: "system endpoints used for control, policy and debugging",
                accessor: format!("system_{}", self.derived("sys/", 8)),
                uuid: self.uuid_for("sys/"),
                options: Value::Null,
                auth: false,
            },
            MountInfo {
                path: "transit/",
                kind: "transit",
                description: "",
                accessor: format!("transit_{}", self.derived("transit/", 8)),
                uuid: self.uuid_for("transit/"),
                // What Vault shows for an engine enabled through the API without options.
                options: json!({}),
                auth: false,
            },
        ]
    }

    /// The accessor of the Kubernetes auth mount: entity aliases and templated policies
    /// (`identity.entity.aliases.<accessor>...`) name it.
    pub fn kubernetes_accessor(&self) -> String {
        format!("auth_kubernetes_{}", self.derived("auth/kubernetes/", 8))
    }

    /// Auth-method mounts, in path order.
    pub fn auth_mounts(&self) -> Vec<MountInfo> {
        vec![
            MountInfo {
                path: "kubernetes/",
                kind: "kubernetes",
                description: "",
                accessor: self.kubernetes_accessor(),
                uuid: self.uuid_for("auth/kubernetes/"),
                // What Vault shows for a method enabled through the API without options.
                options: json!({}),
                auth: true,
            },
            MountInfo {
                path: "token/",
                kind: "token",
                description: "token based credentials",
                accessor: TOKEN_MOUNT_ACCESSOR.to_string(),
                uuid: self.uuid_for("auth/token/"),
                options: Value::Null,
                auth: true,
            },
        ]
    }

    pub(super) fn mount_for(&self, kind: MountKind, prefix: &str) -> MountInfo {
        match kind {
            MountKind::Token | MountKind::Kubernetes => {
                let path = if kind == MountKind::Token {
                    "token/"
                } else {
                    "kubernetes/"
                };
                self.auth_mounts()
                    .into_iter()
                    .find(|m| m.path == path)
                    .unwrap_or_else(|| unreachable!("every auth mount is in the mount table"))
            }
            _ => self
                .secret_mounts()
                .into_iter()
                .find(|m| m.path == prefix)
                .unwrap_or_else(|| unreachable!("every routed prefix is in the mount table")),
        }
    }

    /// The mount serving an API path, for `sys/internal/ui/mounts/<path>`.
    pub fn mount_for_path(&self, path: &str) -> Option<MountInfo> {
        if let Some(rest) = path.strip_prefix("auth/") {
            return self
                .auth_mounts()
                .into_iter()
                .find(|m| rest.starts_with(m.path) || format!("{rest}/") == m.path);
        }
        self.secret_mounts()
            .into_iter()
            .find(|m| path.starts_with(m.path) || format!("{path}/") == m.path)
    }
}
