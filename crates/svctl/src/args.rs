//! Command-line arguments. Flags are clap long options, and the Vault CLI's single-dash
//! spelling (`-format=json`, `-mount secret`) is accepted by rewriting argv first
//! ([`normalize_args`]).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::duration::GoDuration;
use crate::kvdata::parse_pair;
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "svctl",
    version,
    about = "The secretvault command line: a client for servers that speak Vault's HTTP API",
    long_about = "The secretvault command line: a client for servers that speak Vault's HTTP API \
                  (secretvault, OpenBao, HashiCorp Vault).\n\n\
                  The token comes from VAULT_TOKEN, else from ~/.vault-token. Flags may be written \
                  Vault-style (-format=json) or GNU-style (--format json).",
    after_help = "Exit status: 0 on success, 1 for bad arguments or local input, 2 when the server or the connection failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is; every command takes these.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Address of the server [default: http://127.0.0.1:8200].
    #[arg(
        long,
        env = "VAULT_ADDR",
        global = true,
        value_name = "URL",
        display_order = 900
    )]
    pub address: Option<String>,
    /// PEM file of CA certificates to trust for https instead of the built-in roots.
    #[arg(
        long = "ca-cert",
        env = "VAULT_CACERT",
        global = true,
        value_name = "FILE",
        display_order = 901
    )]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and write secrets in a KV version 2 secrets engine.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Create, look up, renew and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write, read, list and delete ACL policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with audit devices.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Encrypt and decrypt with named keys of a transit secrets engine, and manage the keys.
    #[command(subcommand)]
    Transit(TransitCommand),
    /// Seal a value for Git: encrypt it to the cluster's public sealing key, for one key of one SecretVault.
    Seal(SealArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "The value is read from stdin (exactly, trailing newline included) or --from-file. \
    The public key comes from the server at VAULT_ADDR (no token needed) or, offline, from --public-key: \
    a file saved by `svctl seal --fetch-public-key`, the JSON of GET /v1/sys/sealing-key, or the bare base64 key."
)]
pub struct SealArgs {
    /// Namespace of the SecretVault the value is for.
    #[arg(long, value_name = "NS", required_unless_present = "fetch_public_key")]
    pub namespace: Option<String>,
    /// Name of the SecretVault the value is for.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "fetch_public_key"
    )]
    pub name: Option<String>,
    /// The key under spec.data the value is for.
    #[arg(long, value_name = "KEY", required_unless_present_any = ["manifest", "fetch_public_key"], conflicts_with = "manifest")]
    pub key: Option<String>,
    /// Print a SecretVault manifest (YAML) sealing every key of a map key -> value read
    /// from --from-file (YAML or JSON) or stdin.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub manifest: Option<bool>,
    /// Read the value (with --manifest, the map) from this file instead of stdin.
    #[arg(long = "from-file", value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Seal offline to the public key in this file instead of asking the server.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_key: Option<PathBuf>,
    /// Print the server's public sealing key as JSON (the file --public-key reads) and exit.
    #[arg(long = "fetch-public-key", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool,
          conflicts_with_all = ["namespace", "name", "key", "manifest", "from_file", "public_key"])]
    pub fetch_public_key: Option<bool>,
}

/// `-format`.
#[derive(Debug, Args)]
pub struct FormatArg {
    /// Print the result as a table or as the API's JSON.
    #[arg(long, env = "VAULT_FORMAT", value_name = "table|json", default_value = "table", value_parser = Format::parse)]
    pub format: Format,
}

/// `-field`.
#[derive(Debug, Args)]
pub struct FieldArg {
    /// Print only this field, with no trailing newline when piped.
    #[arg(long, value_name = "NAME")]
    pub field: Option<String>,
}

/// `-mount`.
#[derive(Debug, Args)]
pub struct MountArg {
    /// Where the KV engine is mounted; PATH is then relative to it. Without it, PATH
    /// starts with the mount (`secret/foo`), or is taken under `secret/` when it names no mount.
    #[arg(long, value_name = "NAME")]
    pub mount: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a new version of a secret (key=value, key=@file, key=-, or - / @file for JSON).
    Put(KvPutArgs),
    /// Read a secret (the latest version, or -version).
    Get(KvGetArgs),
    /// Change some keys of a secret, keeping the others.
    Patch(KvPatchArgs),
    /// List the keys under a path.
    List(KvListArgs),
    /// Soft-delete the latest version of a secret, or -versions.
    Delete(KvDeleteArgs),
    /// Restore soft-deleted versions.
    Undelete(KvVersionsArgs),
    /// Permanently destroy versions.
    Destroy(KvVersionsArgs),
    /// Read and write a secret's metadata.
    #[command(subcommand)]
    Metadata(KvMetadataCommand),
}

#[derive(Debug, Args)]
pub struct KvPutArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Check-and-set: 0 writes only if the secret does not exist, N only if N is the current version.
    #[arg(long, value_name = "VERSION", allow_negative_numbers = true)]
    pub cas: Option<i64>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: Option<String>,
    /// The data: key=value, key=@file, key=- (stdin), or - / @file holding a JSON object.
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KvGetArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Read this version instead of the latest.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub version: Option<i64>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct KvPatchArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Check-and-set: patch only if N is the current version (0: no check).
    #[arg(long, value_name = "VERSION", allow_negative_numbers = true)]
    pub cas: Option<i64>,
    /// "patch" (HTTP PATCH only) or "rw" (read, then write); default: PATCH, falling back to rw.
    #[arg(long, value_name = "patch|rw")]
    pub method: Option<String>,
    /// A key to remove; repeat for more.
    #[arg(long = "remove-data", value_name = "KEY")]
    pub remove_data: Vec<String>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: Option<String>,
    /// The keys to change (same forms as kv put).
    #[arg(value_name = "K=V")]
    pub data: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KvListArgs {
    #[command(flatten)]
    pub mount: MountArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The folder to list (default: the root of the mount).
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct KvDeleteArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// Versions to delete instead of the latest (comma-separated or repeated).
    #[arg(long, value_name = "N,N")]
    pub versions: Vec<String>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct KvVersionsArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// The versions (comma-separated or repeated).
    #[arg(long, value_name = "N,N")]
    pub versions: Vec<String>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum KvMetadataCommand {
    /// Show a secret's metadata and versions.
    Get(KvMetadataGetArgs),
    /// Change a secret's settings and custom metadata.
    Put(KvMetadataPutArgs),
    /// Delete a secret with all its versions and metadata.
    Delete(KvMetadataDeleteArgs),
}

#[derive(Debug, Args)]
pub struct KvMetadataGetArgs {
    #[command(flatten)]
    pub mount: MountArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct KvMetadataPutArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// How many versions to keep (0: the mount's setting).
    #[arg(long = "max-versions", value_name = "N", allow_negative_numbers = true)]
    pub max_versions: Option<i64>,
    /// Require -cas on every write of this secret.
    #[arg(long = "cas-required", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub cas_required: Option<bool>,
    /// Delete versions this long after they are written ("30s", "3h25m19s"; 0: never).
    #[arg(long = "delete-version-after", value_name = "DURATION", value_parser = parse_duration)]
    pub delete_version_after: Option<GoDuration>,
    /// key=value metadata about the secret; repeat for more.
    #[arg(long = "custom-metadata", value_name = "K=V", value_parser = parse_pair)]
    pub custom_metadata: Vec<(String, String)>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Args)]
pub struct KvMetadataDeleteArgs {
    #[command(flatten)]
    pub mount: MountArg,
    /// The secret's path.
    pub path: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (a child of the current token unless -orphan).
    Create(TokenCreateArgs),
    /// Show a token's properties (the current token by default).
    Lookup(TokenLookupArgs),
    /// Extend a token's lease (the current token by default).
    Renew(TokenRenewArgs),
    /// Revoke a token and its children.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The token's value (requires sudo).
    #[arg(long, value_name = "TOKEN")]
    pub id: Option<String>,
    /// A policy to attach; repeat for more.
    #[arg(long, value_name = "NAME")]
    pub policy: Vec<String>,
    /// Initial TTL ("30m", "1h", seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<GoDuration>,
    /// Hard limit on the token's lifetime.
    #[arg(long = "explicit-max-ttl", value_name = "DURATION", value_parser = parse_duration)]
    pub explicit_max_ttl: Option<GoDuration>,
    /// Make a periodic token renewed by this period (requires sudo).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub period: Option<GoDuration>,
    /// Whether the token may be renewed (default true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub renewable: Option<bool>,
    /// A name to recognise the token by.
    #[arg(long = "display-name", value_name = "NAME")]
    pub display_name: Option<String>,
    /// Create the token without a parent (requires root or sudo).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub orphan: Option<bool>,
    /// Do not attach the "default" policy.
    #[arg(long = "no-default-policy", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub no_default_policy: Option<bool>,
    /// key=value metadata, shown in the audit log; repeat for more.
    #[arg(long, value_name = "K=V", value_parser = parse_pair)]
    pub metadata: Vec<(String, String)>,
    /// How many requests the token may make (0: unlimited).
    #[arg(
        long = "use-limit",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub use_limit: i64,
    /// Create the token against this token role.
    #[arg(long, value_name = "NAME")]
    pub role: Option<String>,
    /// "service" or "batch".
    #[arg(long = "type", value_name = "TYPE")]
    pub token_type: Option<String>,
    /// Entity alias to associate with (with -role).
    #[arg(long = "entity-alias", value_name = "NAME")]
    pub entity_alias: Option<String>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct TokenLookupArgs {
    /// TOKEN is an accessor, not a token.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub accessor: Option<bool>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The token (or accessor) to look up; default: the current token.
    pub token: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokenRenewArgs {
    /// TOKEN is an accessor, not a token.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub accessor: Option<bool>,
    /// The TTL to ask for ("30m"); default: the token's default TTL.
    #[arg(long, short = 'i', value_name = "DURATION", value_parser = parse_duration)]
    pub increment: Option<GoDuration>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The token (or accessor) to renew; default: the current token.
    pub token: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// TOKEN is an accessor, not a token.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub accessor: Option<bool>,
    /// Revoke the current token.
    #[arg(long = "self", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub self_: Option<bool>,
    /// "orphan" keeps the token's children; "path" revokes tokens created under TOKEN as a path prefix.
    #[arg(long, value_name = "orphan|path")]
    pub mode: Option<String>,
    /// The token (or accessor) to revoke.
    pub token: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a policy from a file, or from stdin with "-".
    Write(PolicyWriteArgs),
    /// Print a policy's rules.
    Read(PolicyReadArgs),
    /// List the policies.
    List(PolicyListArgs),
    /// Delete a policy.
    Delete(PolicyNameArgs),
}

#[derive(Debug, Args)]
pub struct PolicyWriteArgs {
    /// The policy's name (lower-cased, as the server stores it).
    pub name: String,
    /// HCL or JSON policy file, or - for stdin.
    pub file: String,
}

#[derive(Debug, Args)]
pub struct PolicyReadArgs {
    #[command(flatten)]
    pub format: FormatArg,
    /// The policy's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PolicyListArgs {
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct PolicyNameArgs {
    /// The policy's name.
    pub name: String,
}

/// `-mount` for transit commands.
#[derive(Debug, Args)]
pub struct TransitMountArg {
    /// Where the transit engine is mounted.
    #[arg(long, value_name = "PATH", default_value = "transit")]
    pub mount: String,
}

#[derive(Debug, Subcommand)]
pub enum TransitCommand {
    /// Create a named key. Its type and the derived, convergent and exportable flags are
    /// fixed once the key exists; an existing key is shown unchanged.
    Create(TransitCreateArgs),
    /// Show a key's settings and versions (never its key material).
    Read(TransitReadArgs),
    /// List the keys.
    List(TransitListArgs),
    /// Change a key's version limits, deletion protection, exportability or rotation period.
    Config(TransitConfigArgs),
    /// Add a version to a key: new encryptions use it, older versions still decrypt.
    Rotate(TransitRotateArgs),
    /// Encrypt a plaintext with a key (creating the key if it does not exist and the token may).
    Encrypt(TransitEncryptArgs),
    /// Decrypt a ciphertext and print the plaintext.
    Decrypt(TransitDecryptArgs),
    /// Re-encrypt a ciphertext with the key's latest version; the plaintext is never revealed.
    Rewrap(TransitRewrapArgs),
    /// Delete a key and every version of it (only once `config -deletion-allowed` is set).
    Delete(TransitDeleteArgs),
}

#[derive(Debug, Args)]
pub struct TransitCreateArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// aes256-gcm96 (the server's default), aes128-gcm96 or chacha20-poly1305.
    #[arg(long = "type", value_name = "TYPE")]
    pub key_type: Option<String>,
    /// Derive a key per request from a -context (then every operation needs one).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub derived: Option<bool>,
    /// Same plaintext and context give the same ciphertext (needs -derived).
    #[arg(long = "convergent-encryption", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub convergent_encryption: Option<bool>,
    /// Allow the key material to be exported (irreversible).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub exportable: Option<bool>,
    /// Allow a plaintext backup of the key (irreversible).
    #[arg(long = "allow-plaintext-backup", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub allow_plaintext_backup: Option<bool>,
    /// Rotate the key automatically this often (at least 1h; 0 turns it off).
    #[arg(long = "auto-rotate-period", value_name = "DURATION", value_parser = parse_duration)]
    pub auto_rotate_period: Option<GoDuration>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TransitReadArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TransitListArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct TransitConfigArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// Oldest version that may still decrypt; older ciphertexts are refused.
    #[arg(
        long = "min-decryption-version",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub min_decryption_version: Option<i64>,
    /// Oldest version that may encrypt with -key-version (0: any).
    #[arg(
        long = "min-encryption-version",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub min_encryption_version: Option<i64>,
    /// Whether the key may be deleted.
    #[arg(long = "deletion-allowed", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub deletion_allowed: Option<bool>,
    /// Allow the key material to be exported (irreversible).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub exportable: Option<bool>,
    /// Allow a plaintext backup of the key (irreversible).
    #[arg(long = "allow-plaintext-backup", value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub allow_plaintext_backup: Option<bool>,
    /// Rotate the key automatically this often (at least 1h; 0 turns it off).
    #[arg(long = "auto-rotate-period", value_name = "DURATION", value_parser = parse_duration)]
    pub auto_rotate_period: Option<GoDuration>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TransitRotateArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct TransitDeleteArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// The key's name.
    pub name: String,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The plaintext is taken exactly as given: from the argument, from a file with @FILE, \
    or from stdin with - or no argument (binary-safe; `echo` adds a newline, `printf %s` does not). \
    svctl base64-encodes it for the server; with -base64 it is base64 already. Prefer stdin or \
    @FILE for secrets: arguments are visible to other users of the machine."
)]
pub struct TransitEncryptArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// Context for a derived key, as text (svctl base64-encodes it).
    #[arg(long, value_name = "TEXT")]
    pub context: Option<String>,
    /// Encrypt with this version instead of the latest.
    #[arg(long = "key-version", value_name = "N", allow_negative_numbers = true)]
    pub key_version: Option<i64>,
    /// The plaintext is base64 already (binary data kept as text).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub base64: Option<bool>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
    /// The plaintext, @FILE, or - for stdin (the default).
    pub plaintext: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The ciphertext (vault:v<N>:...) comes from the argument, from a file with @FILE, \
    or from stdin with - or no argument. The plaintext is printed exactly as it was encrypted \
    (no newline added unless stdout is a terminal); -base64 prints it base64-encoded instead, \
    and -format=json prints the server's response, whose plaintext is base64."
)]
pub struct TransitDecryptArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// Context for a derived key, as text (svctl base64-encodes it).
    #[arg(long, value_name = "TEXT")]
    pub context: Option<String>,
    /// Print the plaintext base64-encoded, as the server returns it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub base64: Option<bool>,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
    /// The ciphertext, @FILE, or - for stdin (the default).
    pub ciphertext: Option<String>,
}

#[derive(Debug, Args)]
pub struct TransitRewrapArgs {
    #[command(flatten)]
    pub mount: TransitMountArg,
    /// Context for a derived key, as text (svctl base64-encodes it).
    #[arg(long, value_name = "TEXT")]
    pub context: Option<String>,
    /// Re-encrypt with this version instead of the latest.
    #[arg(long = "key-version", value_name = "N", allow_negative_numbers = true)]
    pub key_version: Option<i64>,
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The key's name.
    pub name: String,
    /// The ciphertext, @FILE, or - for stdin (the default).
    pub ciphertext: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Hash a value with an audit device's salt, to find it in the audit log.
    Hash(AuditHashArgs),
    /// Check an audit log's hash chain offline and name the first broken line.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub format: FormatArg,
    /// The audit log file to check.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct AuditHashArgs {
    #[command(flatten)]
    pub field: FieldArg,
    #[command(flatten)]
    pub format: FormatArg,
    /// The audit device's path (e.g. "file").
    pub device: String,
    /// The value to hash; "-" reads it from stdin and "@file" from a file, so secrets stay out of argv.
    pub input: String,
}

/// `strconv.ParseBool`, which the Vault CLI's boolean flags use.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean; use true or false")),
    }
}

fn parse_duration(value: &str) -> Result<GoDuration, String> {
    let duration = GoDuration::parse_flag(value).map_err(|e| e.to_string())?;
    if duration.is_negative() {
        return Err(format!(
            "invalid duration {value:?}: it must not be negative"
        ));
    }
    Ok(duration)
}

/// Every long flag name anywhere in the command tree.
fn long_flag_names() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                names.insert(long.to_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, names);
        }
    }
    let mut names = BTreeSet::from(["help".to_owned(), "version".to_owned()]);
    walk(&Cli::command(), &mut names);
    names
}

/// Rewrites the Vault CLI's single-dash long flags (`-format=json`, `-mount secret`) to
/// clap's `--format=json`. Names of real flags are rewritten, and so are other
/// multi-letter names so clap reports `--bogus` rather than `-b`; `-` (stdin), negative
/// numbers, one-letter flags and anything after `--` pass through untouched.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    normalize_with(args, &long_flag_names())
}

fn normalize_with(
    args: impl IntoIterator<Item = OsString>,
    longs: &BTreeSet<String>,
) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            let rest = s.strip_prefix('-')?;
            if rest.starts_with('-') {
                return None;
            }
            let name = rest.split('=').next().unwrap_or(rest);
            let looks_like_flag =
                name.len() > 1 && name.starts_with(|c: char| c.is_ascii_alphabetic());
            (longs.contains(name) || looks_like_flag).then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// Parses argv (after [`normalize_args`]).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(normalize_args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse_strs(args: &[&str]) -> Result<Cli, clap::Error> {
        parse(os(args))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn single_dash_flags_are_rewritten() {
        let got = normalize_args(os(&[
            "svctl",
            "kv",
            "get",
            "-format=json",
            "-mount",
            "secret",
            "-field=a",
            "foo",
        ]));
        assert_eq!(
            got,
            os(&[
                "svctl",
                "kv",
                "get",
                "--format=json",
                "--mount",
                "secret",
                "--field=a",
                "foo"
            ])
        );
    }

    #[test]
    fn other_dashes_are_left_alone() {
        let got = normalize_args(os(&[
            "svctl",
            "kv",
            "put",
            "--cas=1",
            "-",
            "-x",
            "-i=5m",
            "-5",
            "-bogus",
            "--",
            "-format=json",
            "k=-v",
        ]));
        assert_eq!(
            got,
            os(&[
                "svctl",
                "kv",
                "put",
                "--cas=1",
                "-",
                "-x",
                "-i=5m",
                "-5",
                "--bogus",
                "--",
                "-format=json",
                "k=-v"
            ])
        );
    }

    #[test]
    fn vault_style_command_lines_parse() {
        let cli = parse_strs(&[
            "svctl",
            "kv",
            "put",
            "-mount=secret",
            "-cas=0",
            "foo",
            "a=1",
            "b=x=y",
        ])
        .unwrap();
        let Command::Kv(KvCommand::Put(put)) = cli.command else {
            panic!("not kv put")
        };
        assert_eq!(put.cas, Some(0));
        assert_eq!(put.mount.mount.as_deref(), Some("secret"));
        assert_eq!(put.path.as_deref(), Some("foo"));
        assert_eq!(put.data, vec!["a=1", "b=x=y"]);

        let cli = parse_strs(&[
            "svctl",
            "kv",
            "delete",
            "-versions=1,2",
            "-versions",
            "3",
            "secret/foo",
        ])
        .unwrap();
        let Command::Kv(KvCommand::Delete(del)) = cli.command else {
            panic!("not kv delete")
        };
        assert_eq!(del.versions, vec!["1,2", "3"]);

        let cli = parse_strs(&[
            "svctl",
            "kv",
            "get",
            "--format",
            "json",
            "-version=2",
            "secret/foo",
        ])
        .unwrap();
        let Command::Kv(KvCommand::Get(get)) = cli.command else {
            panic!("not kv get")
        };
        assert_eq!(get.format.format, Format::Json);
        assert_eq!(get.version, Some(2));
    }

    #[test]
    fn go_style_booleans() {
        let cli = parse_strs(&[
            "svctl",
            "token",
            "create",
            "-orphan",
            "-renewable=false",
            "-policy=a",
            "-policy",
            "b",
        ])
        .unwrap();
        let Command::Token(TokenCommand::Create(c)) = cli.command else {
            panic!("not token create")
        };
        assert_eq!(c.orphan, Some(true));
        assert_eq!(c.renewable, Some(false));
        assert_eq!(c.policy, vec!["a", "b"]);

        let cli = parse_strs(&["svctl", "token", "revoke", "-self"]).unwrap();
        let Command::Token(TokenCommand::Revoke(r)) = cli.command else {
            panic!("not token revoke")
        };
        assert_eq!(r.self_, Some(true));
        assert!(r.token.is_empty());
    }

    #[test]
    fn durations_and_pairs() {
        let cli = parse_strs(&[
            "svctl",
            "token",
            "create",
            "-ttl=1h",
            "-explicit-max-ttl",
            "7d",
            "-metadata",
            "team=a=b",
            "-use-limit=3",
        ])
        .unwrap();
        let Command::Token(TokenCommand::Create(c)) = cli.command else {
            panic!("not token create")
        };
        assert_eq!(c.ttl.map(|d| d.to_string()).as_deref(), Some("1h0m0s"));
        assert_eq!(
            c.explicit_max_ttl.map(|d| d.to_string()).as_deref(),
            Some("168h0m0s")
        );
        assert_eq!(c.metadata, vec![("team".to_owned(), "a=b".to_owned())]);
        assert_eq!(c.use_limit, 3);

        let cli = parse_strs(&["svctl", "token", "renew", "-i=10m", "s.x"]).unwrap();
        let Command::Token(TokenCommand::Renew(r)) = cli.command else {
            panic!("not token renew")
        };
        assert_eq!(r.increment.map(|d| d.whole_seconds()), Some(600));

        assert!(parse_strs(&["svctl", "token", "create", "-ttl=forever"]).is_err());
        assert!(
            parse_strs(&[
                "svctl",
                "kv",
                "metadata",
                "put",
                "-custom-metadata=novalue",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn bad_format_and_unknown_flags_are_usage_errors() {
        let err = parse_strs(&["svctl", "kv", "get", "-format=xml", "x"]).unwrap_err();
        assert!(
            err.to_string().contains("Invalid output format: xml"),
            "{err}"
        );
        assert!(parse_strs(&["svctl", "kv", "get", "-bogus", "x"]).is_err());
        // Flags a command does not have are refused, as by the Vault CLI.
        assert!(parse_strs(&["svctl", "kv", "metadata", "delete", "-format=json", "x"]).is_err());
    }

    #[test]
    fn seal_flags() {
        let cli = parse_strs(&[
            "svctl",
            "seal",
            "-namespace=prod",
            "-name",
            "db",
            "-key=password",
        ])
        .unwrap();
        let Command::Seal(s) = cli.command else {
            panic!("not seal")
        };
        assert_eq!(s.namespace.as_deref(), Some("prod"));
        assert_eq!(s.key.as_deref(), Some("password"));
        assert_eq!(s.manifest, None);

        let cli = parse_strs(&[
            "svctl",
            "seal",
            "--namespace",
            "prod",
            "--name",
            "db",
            "--manifest",
            "--from-file",
            "v.yaml",
        ])
        .unwrap();
        let Command::Seal(s) = cli.command else {
            panic!("not seal")
        };
        assert_eq!(s.manifest, Some(true));

        assert!(parse_strs(&["svctl", "seal", "--fetch-public-key"]).is_ok());
        // A single value needs its key; a manifest takes keys from the file.
        assert!(parse_strs(&["svctl", "seal", "--namespace", "a", "--name", "b"]).is_err());
        assert!(parse_strs(&["svctl", "seal", "--name", "b", "--key", "k"]).is_err());
        assert!(
            parse_strs(&[
                "svctl",
                "seal",
                "--namespace",
                "a",
                "--name",
                "b",
                "--key",
                "k",
                "--manifest"
            ])
            .is_err()
        );
        assert!(parse_strs(&["svctl", "seal", "--fetch-public-key", "--namespace", "a"]).is_err());
    }

    #[test]
    fn transit_flags() {
        let cli = parse_strs(&[
            "svctl",
            "transit",
            "encrypt",
            "-context=user-1",
            "-key-version=2",
            "-base64",
            "-field=ciphertext",
            "-mount=kms",
            "k",
            "-",
        ])
        .unwrap();
        let Command::Transit(TransitCommand::Encrypt(e)) = cli.command else {
            panic!("not transit encrypt")
        };
        assert_eq!(e.context.as_deref(), Some("user-1"));
        assert_eq!(e.key_version, Some(2));
        assert_eq!(e.base64, Some(true));
        assert_eq!(e.field.field.as_deref(), Some("ciphertext"));
        assert_eq!(e.mount.mount, "kms");
        assert_eq!((e.name.as_str(), e.plaintext.as_deref()), ("k", Some("-")));

        let cli = parse_strs(&["svctl", "transit", "decrypt", "k"]).unwrap();
        let Command::Transit(TransitCommand::Decrypt(d)) = cli.command else {
            panic!("not transit decrypt")
        };
        assert_eq!(d.mount.mount, "transit");
        assert_eq!(d.ciphertext, None);

        let cli = parse_strs(&[
            "svctl",
            "transit",
            "config",
            "-deletion-allowed=false",
            "-auto-rotate-period=30d",
            "-min-decryption-version",
            "3",
            "k",
        ])
        .unwrap();
        let Command::Transit(TransitCommand::Config(c)) = cli.command else {
            panic!("not transit config")
        };
        assert_eq!(c.deletion_allowed, Some(false));
        assert_eq!(
            c.auto_rotate_period.map(|d| d.whole_seconds()),
            Some(30 * 86_400)
        );
        assert_eq!(c.min_decryption_version, Some(3));
        assert!(
            parse_strs(&["svctl", "transit", "create", "-auto-rotate-period=-1h", "k"]).is_err()
        );
        assert!(parse_strs(&["svctl", "transit", "rotate"]).is_err());
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert_eq!(parse_go_bool("0"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
    }
}
