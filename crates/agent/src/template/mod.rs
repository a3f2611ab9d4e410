//! The template language of consul-template, which the Vault Agent and its injector use:
//! Go's `text/template` with consul-template's functions. Users migrating from Vault
//! bring templates like
//!
//! ```text
//! {{- with secret "secret/data/lobstack/api-keys" -}}
//! export ANTHROPIC_API_KEY="{{ .Data.data.anthropic_api_key }}"
//! {{- end -}}
//! ```
//!
//! and expect them to render byte for byte as before, so this is a faithful port of the
//! Go lexer, parser and executor for the subset such templates use, checked against a
//! real `bao agent` in `tests/template_vs_bao_agent.rs`.
//!
//! Supported: text and actions, trim markers, comments, fields on maps and on the secret
//! struct (`.Data`, `.LeaseDuration`, …), `$` and variables (declare, assign, range
//! variables), `if`/`else if`/`else`, `with`/`else with`/`else`, `range` (maps in key
//! order, lists, integers) with `else`, `break` and `continue`, pipelines, parentheses,
//! all literals but complex numbers, Go's built-ins (`and or not eq ne lt le gt ge len
//! index slice print printf println html js urlquery`), and consul-template's `secret
//! toJSON toJSONPretty toUnescapedJSON toUnescapedJSONPretty base64Encode base64Decode
//! base64URLEncode base64URLDecode env toUpper toLower replaceAll trimSpace trimPrefix
//! trimSuffix split join contains`. Not supported: `define`/`template`/`block`, `call`,
//! the write form of `secret`, and every other consul-template function (they fail at
//! parse time as "function … not defined", as Go reports unknown functions).
//!
//! Known, deliberate deviations from Go: values are Unicode text, so `base64Decode` of
//! binary data and `\x`/octal escapes that do not form UTF-8 are errors; Go's
//! `unicode.IsPrint` (used by `%q`) is approximated without Unicode tables; a pointer
//! nested inside a printed struct prints as `&{…}` where Go prints a memory address.
//!
//! Hostile templates are bounded: nesting depth ([`parse::MAX_NESTING`]), template size,
//! output size ([`RenderOptions::max_output_bytes`]) and execution work.

mod exec;
mod funcs;
mod gofmt;
mod gojson;
mod lex;
pub(crate) mod parse;
mod value;

use std::sync::Arc;

/// Templates longer than this are refused before parsing.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// Where `secret "path"` gets its data.
pub trait SecretSource {
    /// Reads `path` (as written in the template, trimmed of spaces and slashes, possibly
    /// with a `?version=N` query) and returns the whole Vault response object
    /// (`request_id`, `lease_duration`, `data`, …). Like consul-template, the source is
    /// responsible for KV v2 path handling (`secret/foo` → `secret/data/foo`). An error
    /// string aborts rendering; it must not contain secret values.
    fn secret(&mut self, path: &str) -> Result<serde_json::Value, String>;
}

/// How the `env` function looks a variable up; `None` renders as "" (Go's `os.Getenv`).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options for [`Template::render`].
#[derive(Clone)]
pub struct RenderOptions {
    /// consul-template's `error_on_missing_key`: a missing map key is an error instead
    /// of rendering `<no value>`.
    pub error_on_missing_key: bool,
    /// Backs the `env` function. [`RenderOptions::default`] reads the process
    /// environment; tests pass a map.
    pub env: EnvLookup,
    /// Rendering fails once the output would exceed this many bytes.
    pub max_output_bytes: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            error_on_missing_key: false,
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            max_output_bytes: 16 << 20,
        }
    }
}

impl RenderOptions {
    /// Options whose `env` function sees exactly `vars`.
    pub fn with_env<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map: std::collections::HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        RenderOptions {
            env: Arc::new(move |name: &str| map.get(name).cloned()),
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("error_on_missing_key", &self.error_on_missing_key)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish_non_exhaustive()
    }
}

/// A template that failed to parse or render. The messages follow Go's wording, so
/// they read the same as consul-template's, with the template's name in place of
/// consul-template's empty one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `template: NAME:LINE: problem`
    #[error("template: {template}:{line}: {message}")]
    Parse {
        template: String,
        line: usize,
        message: String,
    },
    /// `template: NAME:LINE:COL: executing "NAME" at <context>: problem`
    #[error(
        "template: {template}:{line}:{col}: executing \"{template}\" at <{context}>: {message}"
    )]
    Exec {
        template: String,
        line: usize,
        col: usize,
        context: String,
        message: String,
    },
    /// A limit that protects the agent (output size, work) was hit.
    #[error("template: {template}: {message}")]
    Limit { template: String, message: String },
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    name: String,
    text: String,
    root: Vec<parse::Node>,
}

impl Template {
    /// Parses `text`; `name` appears in error messages (Go's `template: NAME:3: …`).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::Limit {
                template: name.to_string(),
                message: format!(
                    "the template is {} bytes; at most {MAX_TEMPLATE_BYTES} are accepted",
                    text.len()
                ),
            });
        }
        let root = parse::Parser::new(name, text, &funcs::is_function).parse()?;
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            root,
        })
    }

    /// The template's name, as given to [`Template::parse`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The paths of `secret "…"` calls written with a literal path, in order of first
    /// appearance and without duplicates, normalised as the source will receive them:
    /// what the agent must fetch and watch for this template.
    pub fn secret_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.root {
            collect_paths_node(n, &mut out);
        }
        out
    }

    /// Renders the template, fetching secrets from `source`.
    pub fn render(
        &self,
        source: &mut dyn SecretSource,
        opts: &RenderOptions,
    ) -> Result<String, TemplateError> {
        exec::execute(self, source, opts)
    }
}

fn collect_paths_node(n: &parse::Node, out: &mut Vec<String>) {
    use parse::Node;
    match n {
        Node::Action { pipe, .. } => collect_paths_pipe(pipe, out),
        Node::If(b) | Node::Range(b) | Node::With(b) => {
            collect_paths_pipe(&b.pipe, out);
            for n in b.list.iter().chain(b.else_list.iter().flatten()) {
                collect_paths_node(n, out);
            }
        }
        Node::Text { .. } | Node::Break { .. } | Node::Continue { .. } => {}
    }
}

fn collect_paths_pipe(p: &parse::Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        if let [
            parse::Arg::Identifier { name, .. },
            parse::Arg::String { text, .. },
        ] = c.args.as_slice()
            && name == "secret"
        {
            let path = funcs::normalize_secret_path(text);
            if !path.is_empty() && !out.contains(&path) {
                out.push(path);
            }
        }
        for a in &c.args {
            collect_paths_arg(a, out);
        }
    }
}

fn collect_paths_arg(a: &parse::Arg, out: &mut Vec<String>) {
    match a {
        parse::Arg::Pipe(p) => collect_paths_pipe(p, out),
        parse::Arg::Chain { node, .. } => collect_paths_arg(node, out),
        _ => {}
    }
}
