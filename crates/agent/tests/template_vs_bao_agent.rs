//! Differential test: the same templates rendered by a real `bao agent` (OpenBao's copy of
//! the Vault Agent, which embeds consul-template) and by our engine must be byte-equal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secretvault_agent::template::{RenderOptions, SecretSource, Template};
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde_json::json;

/// Reads secrets over HTTP as the agent will, with consul-template's KV v2 path shim for
/// the one mount this test uses.
struct HttpSource {
    client: reqwest::blocking::Client,
    url: String,
}

impl SecretSource for HttpSource {
    fn secret(&mut self, path: &str) -> Result<serde_json::Value, String> {
        let path = match path.strip_prefix("secret/") {
            Some(rest) if !rest.starts_with("data/") => format!("secret/data/{rest}"),
            _ => path.to_string(),
        };
        let resp = self
            .client
            .get(format!("{}/v1/{path}", self.url))
            .header("X-Vault-Token", BAO_ROOT_TOKEN)
            .send()
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        resp.json().map_err(|e| e.to_string())
    }
}

fn write_secret(bao: &BaoDev, path: &str, data: serde_json::Value) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/v1/secret/data/{path}", bao.url()))
        .header("X-Vault-Token", BAO_ROOT_TOKEN)
        .json(&json!({ "data": data }))
        .send()
        .unwrap();
    assert!(
        resp.status().is_success(),
        "writing {path}: {}",
        resp.status()
    );
}

const SEED: &str = r#"{{- with secret "secret/data/lobstack/api-keys" -}}
export ANTHROPIC_API_KEY="{{ .Data.data.anthropic_api_key }}"
export OPENAI_API_KEY="{{ .Data.data.openai_api_key }}"
export STRIPE_SECRET_KEY="{{ .Data.data.stripe_secret_key }}"
{{- end -}}
"#;

fn templates() -> Vec<(&'static str, &'static str)> {
    vec![
        ("seed", SEED),
        (
            "range",
            r#"{{ with secret "secret/data/nasty" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}|{{ printf "%q" $k }}
{{ end }}{{ range $i, $e := .Data.data.list }}[{{ $i }}:{{ $e }}]{{ end }}
{{ range .Data.data.empty_list }}never{{ else }}empty list{{ end }}
{{ range $k, $v := .Data.data.obj }}{{ if eq $k "skip" }}{{ continue }}{{ end }}{{ if eq $k "stop" }}{{ break }}{{ end }}{{ $k }};{{ end }}
{{ end }}"#,
        ),
        (
            "json",
            r#"{{ with secret "secret/data/nasty" -}}
{{ .Data.data | toJSON }}
{{ .Data.data.obj | toJSONPretty }}
{{ .Data.data | toUnescapedJSON }}
{{ toJSON .Data.data.list }} {{ toJSON .Data.data.empty_obj }} {{ toJSONPretty .Data.data.empty_list }}
{{ toJSON "<tag> & \u2028" }} {{ toJSON 1.5 }} {{ toJSON 1e21 }} {{ toJSON nil }} {{ toJSON .Data.data.missing }}
{{- end }}"#,
        ),
        (
            "numbers",
            r#"{{ with secret "secret/data/nasty" }}{{ .Data.data.int }} {{ .Data.data.neg }} {{ .Data.data.float }} {{ .Data.data.big }} {{ .Data.data.exp }} {{ .Data.data.small }} {{ .Data.data.whole_float }}
{{ printf "%v %s %d %q %T" .Data.data.int .Data.data.int .Data.data.int .Data.data.float .Data.data.int }}
{{ .Data.data.int.Int64 }} {{ .Data.data.float.Float64 }} {{ .Data.data.int.String }} {{ printf "%T %T" .Data.data.int.Int64 .Data.data.float.Float64 | len }}
{{ eq .Data.data.int "42" }} {{ if .Data.data.zero }}zero is truthy{{ end }} {{ len .Data.data.float }}
{{ 1e6 }} {{ 1.0 }} {{ 0x1F }} {{ 0o17 }} {{ 1_000 }} {{ 'a' }} {{ -0.0 }} {{ 123456789.0 }} {{ 0.000012 }} {{ 1e-7 }} {{ 2.5e20 }}
{{ end }}"#,
        ),
        (
            "trim",
            "a  \n\t {{- /* a comment */ -}}  \n b {{- \"x\" }} c {{ \"y\" -}} \n\n d\n{{/* plain comment */}}\n   {{- 3 }}{{- -3 }}{{- -3 -}}   e\n{{- if true }}\n  f\n{{- end }}\n",
        ),
        (
            "control",
            r#"{{ with secret "secret/nasty" -}}
{{ with .Data.data.missing }}yes{{ else }}no{{ end }} {{ with .Data.data.empty_str }}yes{{ else with .Data.data.str }}else-with {{ . }}{{ end }}
{{ if .Data.data.false }}a{{ else if .Data.data.zero_str }}b{{ else if .Data.data.list }}c{{ else }}d{{ end }}
{{ and 1 0 "x" }} {{ or 0 "" "z" }} {{ not .Data.data.empty_obj }} {{ and .Data.data.true .Data.data.str }} {{ or .Data.data.missing "dflt" }}
{{ len .Data.data.list }} {{ index .Data.data.list 1 }} {{ index .Data.data.obj "a" }} {{ index .Data.data "missing" }} {{ slice "abcdef" 1 3 }} {{ slice .Data.data.list 1 }}
{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ ne .Data.data.str "x" }} {{ eq 3 1 2 3 }}
{{ .Data.data.missing }} {{ .Data.data.null }} {{ print .Data.data.missing }} {{ .Data.metadata.version }} {{ .Data.metadata.destroyed }}
{{ .Data.data }}
{{ .Data.data.obj }} {{ .Data.data.list }} {{ .LeaseDuration }} {{ .Renewable }} {{ .Warnings }} {{ .Auth }} {{ .WrapInfo }}
{{- end }}"#,
        ),
        (
            "strings",
            r#"{{ with secret "secret/data/nasty" -}}
{{ base64Encode .Data.data.str }} {{ "aMOpbGxv" | base64Decode }} {{ base64URLEncode "?>?>" }} {{ base64URLDecode "Pz4_Pg==" }}
{{ toUpper "straße İstanbul σς" }} {{ toLower "ΣΑΣ İ ÀÉ" }} {{ replaceAll "a" "-" "banana" }} {{ replaceAll "" "." "héé" }}
[{{ trimSpace "\t  x y \n" }}] {{ trimPrefix "pre" "prefix" }} {{ trimSuffix "fix" "prefix" }}
{{ split "," "a,b,,c" }} {{ split "," "  " }} {{ join "+" (split ":" "x:y:z") }} {{ len (split "" "héllo") }}
{{ contains "ell" "hello" }} {{ contains "x" (split "," "x,y") }} {{ contains 2 .Data.data.list }} {{ .Data.data.list | contains "two" }}
[{{ env "SV_TEMPLATE_TEST_VAR" }}] [{{ env "SV_TEMPLATE_TEST_UNSET" }}]
{{ html "<a href='x'>&\"" }} {{ js "it's <b> = \"q\"\n" }} {{ urlquery "a b&c=d/é" }}
{{- end }}"#,
        ),
        (
            "printf",
            r#"{{ printf "%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c|%U|%q" 42 42 -42 42 255 255 8 5 233 233 65 }}
{{ printf "%s|%10s|%-10s|%.2s|%q|%+q|%x|% x|%X" "héllo" "ab" "ab" "héllo" "a\"b\n" "é" "hé" "hé" "hi" }}
{{ printf "%v|%.2f|%8.3f|%e|%E|%g|%G|%.3g|%f" 3.14159 3.14159 3.14159 123456.789 0.000123 1e21 1e-7 1234.5678 2.0 }}
{{ printf "%t|%v|%T|%T|%T|%%|%d" true false 1 "s" 1.5 }}
{{ printf "%d %d" 1 }} {{ printf "%d" 1 2 "x" }} {{ printf "%z" 1 }} {{ printf "%s" nil }} {{ printf "%!" }} {{ printf "%[2]s %[1]s" "a" "b" }} {{ printf "%*d|%.*f" 5 1 2 3.14159 }}
{{ print 1 2 "a" "b" 3 nil true }} {{ println "x" 1 }}{{ print }}
{{- with secret "secret/data/nasty" }}
{{ printf "%v" .Data.data.obj }} {{ printf "%d" .Data.data.list }} {{ printf "%s" .Data.data.int }} {{ printf "%5v|" .Data.data.list }} {{ printf "%+v" .Data.data.obj }}
{{ print .Data.data.int .Data.data.int }} {{ print .Data.data.int 1 }}
{{- end }}"#,
        ),
        (
            "variables",
            r#"{{ $x := 1 }}{{ $y := "s" }}{{ $x }} {{ $y }}{{ $x = 2 }} {{ $x }} {{ $ }}
{{ with $s := secret "secret/data/nasty" }}{{ $s.Data.data.str }} {{ $x = $s.Data.data.int }}{{ end }}{{ $x }}
{{ range $i, $e := split "," "a,b,c" }}{{ $i }}{{ $e }}{{ $x = $e }}{{ end }} {{ $x }}
{{ range $e := split "," "p,q" }}{{ $e }}{{ end }} {{ range 3 }}{{ . }}{{ end }} {{ range $i := 2 }}{{ $i }}{{ end }} {{ range 0 }}x{{ else }}none{{ end }}
{{ (secret "secret/data/nasty").Data.data.str }} {{ with secret "secret/data/nasty" }}{{ $.x }}{{ end }} {{ (split "," "m,n") }}
"#,
        ),
    ]
}

fn nasty_data() -> serde_json::Value {
    json!({
        "str": "héllo wörld",
        "empty_str": "",
        "zero_str": "0",
        "quotes": "single ' double \" back ` dollar $HOME ${X} backslash \\ end\\",
        "html": "<script>alert('x')</script> & more",
        "ctl": "tab\there\nnewline\r\ncrlf \u{1} \u{7f} \u{2028} \u{a0} \u{ad} 😀",
        "int": 42,
        "neg": -7,
        "zero": 0,
        "float": 1.5,
        "whole_float": 1000000.0,
        "big": 12345678901234567890u64,
        "exp": 1e300,
        "small": 0.0000001,
        "true": true,
        "false": false,
        "null": null,
        "list": [1, "two", 3.5, null, {"k": "v"}, [true]],
        "empty_list": [],
        "empty_obj": {},
        "obj": {"a": "x", "b": 2, "skip": 0, "c": null, "stop": 1, "z": "never"},
        "equals=sign": "a=b",
        "spaced key": "  leading and trailing  "
    })
}

fn run_bao_agent(bao: &BaoDev, dir: &Path, names: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("token"), BAO_ROOT_TOKEN).unwrap();
    let mut cfg = format!(
        "vault {{\n  address = \"{}\"\n}}\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = \"{}\"\n    }}\n  }}\n}}\nexit_after_auth = true\n",
        bao.url(),
        dir.join("token").display()
    );
    for n in names {
        cfg.push_str(&format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n}}\n",
            dir.join(format!("{n}.tpl")).display(),
            dir.join(format!("{n}.out")).display()
        ));
    }
    std::fs::write(dir.join("agent.hcl"), cfg).unwrap();
    let mut child = Command::new(bao.binary())
        .arg("agent")
        .arg(format!("-config={}", dir.join("agent.hcl").display()))
        .env("HOME", dir)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .env("SV_TEMPLATE_TEST_VAR", "from the agent's environment")
        .env_remove("SV_TEMPLATE_TEST_UNSET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bao agent");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn templates_render_exactly_like_bao_agent() {
    let Some(bao) = BaoDev::start("templates_render_exactly_like_bao_agent") else {
        return;
    };
    write_secret(
        &bao,
        "lobstack/api-keys",
        json!({
            "anthropic_api_key": "sk-ant-\"quoted\" $dollar `tick` \\slash\nnewline <>&",
            "openai_api_key": "sk-proj-ünïcødé 😀",
            "stripe_secret_key": "  sk_live_spaces  "
        }),
    );
    write_secret(&bao, "nasty", nasty_data());

    let dir = tempfile::tempdir().unwrap();
    let templates = templates();
    let names: Vec<&str> = templates.iter().map(|(n, _)| *n).collect();
    for (name, text) in &templates {
        std::fs::write(dir.path().join(format!("{name}.tpl")), text).unwrap();
    }
    let out = run_bao_agent(&bao, dir.path(), &names);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "bao agent failed ({}):\n{log}",
        out.status
    );

    let mut source = HttpSource {
        client: reqwest::blocking::Client::new(),
        url: bao.url(),
    };
    let opts = RenderOptions::with_env([("SV_TEMPLATE_TEST_VAR", "from the agent's environment")]);
    let mut mismatches = Vec::new();
    for (name, text) in &templates {
        let expected = std::fs::read_to_string(dir.path().join(format!("{name}.out")))
            .unwrap_or_else(|e| panic!("bao agent wrote no output for {name}: {e}\n{log}"));
        let tmpl = Template::parse(name, text).unwrap_or_else(|e| panic!("{e}"));
        let got = tmpl
            .render(&mut source, &opts)
            .unwrap_or_else(|e| panic!("{e}"));
        if got != expected {
            mismatches.push(format!(
                "template {name}:\n  bao agent: {expected:?}\n  ours:      {got:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Runs `bao agent` on one failing template until it logs its first template error, and
/// returns that error as consul-template words it (without the source-file prefix).
fn bao_agent_error(bao: &BaoDev, dir: &Path, text: &str, error_on_missing_key: bool) -> String {
    use std::io::{BufRead, BufReader};
    std::fs::write(dir.join("token"), BAO_ROOT_TOKEN).unwrap();
    std::fs::write(dir.join("e.tpl"), text).unwrap();
    let cfg = format!(
        "vault {{\n  address = \"{}\"\n}}\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = \"{}\"\n    }}\n  }}\n}}\nexit_after_auth = true\ntemplate {{\n  source = \"{}\"\n  destination = \"{}\"\n  error_on_missing_key = {error_on_missing_key}\n}}\n",
        bao.url(),
        dir.join("token").display(),
        dir.join("e.tpl").display(),
        dir.join("e.out").display(),
    );
    std::fs::write(dir.join("e.hcl"), cfg).unwrap();
    let mut child = Command::new(bao.binary())
        .arg("agent")
        .arg(format!("-config={}", dir.join("e.hcl").display()))
        .env("HOME", dir)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bao agent");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("template server error") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|_| panic!("bao agent logged no template error for {text:?}"));
    // error="<text with its double quotes escaped>" backoff=…
    let start = line.find("error=\"").expect("error= field") + "error=\"".len();
    let end = line.rfind("\" backoff=").unwrap_or(line.len());
    let err = line[start..end].replace("\\\"", "\"");
    for marker in [": execute: ", ": parse: "] {
        if let Some(i) = err.find(marker) {
            return err[i + marker.len()..].to_string();
        }
    }
    err
}

#[test]
fn error_messages_match_bao_agent() {
    let Some(bao) = BaoDev::start("error_messages_match_bao_agent") else {
        return;
    };
    write_secret(&bao, "nasty", nasty_data());
    let cases: &[(&str, bool)] = &[
        ("abc\n{{ .Data.data.x }", false),
        ("{{ nosuch }}", false),
        ("{{ if true }}x", false),
        ("{{ $x }}", false),
        ("{{ 1 | 2 }}", false),
        ("{{\n.x", false),
        ("{{ \"a\".b }}", false),
        ("{{ else }}", false),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Data.data.int | toUpper }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Data.data.missing.sub }}{{ end }}"#,
            false,
        ),
        (
            "{{ with secret \"secret/data/nasty\" }}\n  {{ .Data.data.int.x }}{{ end }}",
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Foo }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Auth.ClientToken }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Data.data.nope }}{{ end }}"#,
            true,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ index .Data.data.list 10 }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ .Data.data.float.Int64 }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ lt .Data.data.obj 1 }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ join "," .Data.data.list }}{{ end }}"#,
            false,
        ),
        (
            r#"{{ with secret "secret/data/nasty" }}{{ range .Data.data.str }}{{ end }}{{ end }}"#,
            false,
        ),
        ("{{ eq 1 \"a\" }}", false),
        ("{{ index 1 2 }}", false),
        ("{{ toUpper 3 }}", false),
        ("{{ base64Decode \"!!\" }}", false),
        ("{{ nil }}", false),
        ("{{ slice \"abc\" 2 1 }}", false),
        ("{{ len 3 }}", false),
        ("{{ .x }}{{ $y := 1 }}{{ $y.z }}", false),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut source = HttpSource {
        client: reqwest::blocking::Client::new(),
        url: bao.url(),
    };
    let mut mismatches = Vec::new();
    for (text, missing_key_error) in cases {
        let expected = bao_agent_error(&bao, dir.path(), text, *missing_key_error);
        // consul-template names its templates "", so ours gets the same name here.
        let opts = RenderOptions {
            error_on_missing_key: *missing_key_error,
            ..RenderOptions::default()
        };
        let got = match Template::parse("", text) {
            Ok(t) => match t.render(&mut source, &opts) {
                Ok(out) => format!("(rendered {out:?})"),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if got != expected {
            mismatches.push(format!(
                "template {text:?}:\n  bao agent: {expected}\n  ours:      {got}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
