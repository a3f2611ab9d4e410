//! The template engine against fixed secrets: expected outputs (taken from consul-template
//! where noted), Go's error messages, limits, and robustness under arbitrary input.

use std::collections::HashMap;

use proptest::prelude::*;
use secretvault_agent::template::{RenderOptions, SecretSource, Template, TemplateError};
use serde_json::json;

#[derive(Default)]
struct MapSource {
    secrets: HashMap<String, serde_json::Value>,
    reads: Vec<String>,
}

impl MapSource {
    fn kv(path: &str, data: serde_json::Value) -> Self {
        let mut s = MapSource::default();
        s.add(path, data);
        s
    }

    fn add(&mut self, path: &str, data: serde_json::Value) {
        self.secrets.insert(
            path.to_string(),
            json!({
                "request_id": "req-1", "lease_id": "", "lease_duration": 0, "renewable": false,
                "data": {"data": data, "metadata": {"version": 3, "custom_metadata": null}},
                "warnings": null, "auth": null, "wrap_info": null
            }),
        );
    }
}

impl SecretSource for MapSource {
    fn secret(&mut self, path: &str) -> Result<serde_json::Value, String> {
        self.reads.push(path.to_string());
        self.secrets
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no secret at {path}"))
    }
}

fn render_with(
    src: &mut MapSource,
    text: &str,
    opts: &RenderOptions,
) -> Result<String, TemplateError> {
    Template::parse("t", text)?.render(src, opts)
}

fn render(src: &mut MapSource, text: &str) -> Result<String, TemplateError> {
    render_with(src, text, &RenderOptions::with_env([("HOME", "/home/app")]))
}

const SEED: &str = r#"{{- with secret "secret/data/lobstack/api-keys" -}}
export ANTHROPIC_API_KEY="{{ .Data.data.anthropic_api_key }}"
export OPENAI_API_KEY="{{ .Data.data.openai_api_key }}"
export STRIPE_SECRET_KEY="{{ .Data.data.stripe_secret_key }}"
{{- end -}}
"#;

#[test]
fn seed_template_renders_like_consul_template() {
    let mut src = MapSource::kv(
        "secret/data/lobstack/api-keys",
        json!({"anthropic_api_key": "sk-ant", "openai_api_key": "sk-oai", "stripe_secret_key": "sk_live"}),
    );
    assert_eq!(
        render(&mut src, SEED).unwrap(),
        "export ANTHROPIC_API_KEY=\"sk-ant\"\nexport OPENAI_API_KEY=\"sk-oai\"\nexport STRIPE_SECRET_KEY=\"sk_live\""
    );
    assert_eq!(
        Template::parse("seed", SEED).unwrap().secret_paths(),
        vec!["secret/data/lobstack/api-keys"]
    );
}

/// Outputs recorded from consul-template (bao agent 2.7.2) for the same data.
#[test]
fn values_print_as_consul_template_prints_them() {
    let mut src = MapSource::kv(
        "secret/data/t",
        json!({"n": 1000000, "f": 1.5, "big": 12345678901234567890u64, "e": 1e21, "neg": -3,
               "fl": 1000000.0, "s": "a<b>&c\"q", "b": true, "nul": null,
               "arr": [1, "x", {"k": "v"}], "obj": {"z": 1, "a": "b"}}),
    );
    let out = render(
        &mut src,
        r#"{{ with secret "secret/data/t" }}n={{ .Data.data.n }} f={{ .Data.data.f }} big={{ .Data.data.big }} e={{ .Data.data.e }} neg={{.Data.data.neg}} fl={{.Data.data.fl}} s={{.Data.data.s}} b={{.Data.data.b}} nul={{.Data.data.nul}} arr={{.Data.data.arr}} obj={{.Data.data.obj}} missing={{.Data.data.missing}}
json={{ .Data.data | toJSON }}
printf={{ printf "%v %d %q %s" .Data.data.n .Data.data.n .Data.data.s .Data.data.fl }}
{{ .Data.data.missing | print }}|{{ print .Data.data.missing }}|{{ index .Data.data "missing" }}{{ end }}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        "n=1000000 f=1.5 big=12345678901234567890 e=1e+21 neg=-3 fl=1000000 s=a<b>&c\"q b=true nul=<no value> arr=[1 x map[k:v]] obj=map[a:b z:1] missing=<no value>\n\
         json={\"arr\":[1,\"x\",{\"k\":\"v\"}],\"b\":true,\"big\":12345678901234567890,\"e\":1e+21,\"f\":1.5,\"fl\":1000000,\"n\":1000000,\"neg\":-3,\"nul\":null,\"obj\":{\"a\":\"b\",\"z\":1},\"s\":\"a\\u003cb\\u003e\\u0026c\\\"q\"}\n\
         printf=1000000 %!d(json.Number=1000000) \"a<b>&c\\\"q\" 1000000\n\
         <nil>|<nil>|<no value>"
    );
}

#[test]
fn secret_struct_prints_and_encodes_like_go() {
    let mut src = MapSource::kv("kv/data/x", json!({"a": "b"}));
    let out = render(
        &mut src,
        r#"{{ with secret "kv/data/x" }}{{ . }}
{{ printf "%+v" . }}
{{ toJSON . }}{{ end }}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        "{req-1  0 false map[data:map[a:b] metadata:map[custom_metadata:<nil> version:3]] [] <nil> <nil>}\n\
         &{RequestID:req-1 LeaseID: LeaseDuration:0 Renewable:false Data:map[data:map[a:b] metadata:map[custom_metadata:<nil> version:3]] Warnings:[] Auth:<nil> WrapInfo:<nil>}\n\
         {\"RequestID\":\"req-1\",\"LeaseID\":\"\",\"LeaseDuration\":0,\"Renewable\":false,\"Data\":{\"data\":{\"a\":\"b\"},\"metadata\":{\"custom_metadata\":null,\"version\":3}},\"Warnings\":null,\"Auth\":null,\"WrapInfo\":null}"
    );
}

#[test]
fn secrets_are_fetched_once_per_render_and_paths_normalised() {
    let mut src = MapSource::kv("kv/data/x", json!({"a": "1"}));
    let out = render(
        &mut src,
        r#"{{ with secret " /kv/data/x/ " }}{{ .Data.data.a }}{{ end }}{{ (secret "kv/data/x").Data.data.a }}"#,
    )
    .unwrap();
    assert_eq!(out, "11");
    assert_eq!(src.reads, vec!["kv/data/x"]);
    let t = Template::parse(
        "p",
        r#"{{ secret "a/b" }}{{ if true }}{{ with secret "/c/" }}{{ end }}{{ end }}{{ (secret "a/b").Data }}{{ secret (printf "d") }}"#,
    )
    .unwrap();
    assert_eq!(t.secret_paths(), vec!["a/b", "c"]);
}

#[test]
fn go_truthiness_and_control_flow() {
    let mut src = MapSource::kv(
        "s",
        json!({"e": "", "z": 0, "f": false, "n": null, "m": {}, "l": [], "zs": "0", "t": [0]}),
    );
    let out = render(
        &mut src,
        r#"{{ with secret "s" }}{{ range $k, $v := .Data.data }}{{ $k }}:{{ if $v }}T{{ else }}F{{ end }} {{ end }}{{ end }}"#,
    )
    .unwrap();
    // JSON numbers are json.Number strings in consul-template, so 0 is truthy.
    assert_eq!(out, "e:F f:F l:F m:F n:F t:T z:T zs:T ");
    let out = render(&mut src, "{{ range $i, $e := split \",\" \"a,b,c,d\" }}{{ if eq $e \"b\" }}{{ continue }}{{ end }}{{ if eq $e \"d\" }}{{ break }}{{ end }}{{ $i }}{{ $e }}{{ end }}").unwrap();
    assert_eq!(out, "0a2c");
    let out = render(
        &mut src,
        "{{ if false }}a{{ else if 0 }}b{{ else if \"x\" }}c{{ else }}d{{ end }}",
    )
    .unwrap();
    assert_eq!(out, "c");
}

#[test]
fn env_function_uses_the_given_lookup() {
    let mut src = MapSource::default();
    assert_eq!(
        render(&mut src, r#"{{ env "HOME" }}|{{ env "NOPE" }}"#).unwrap(),
        "/home/app|"
    );
}

#[test]
fn missing_keys_follow_error_on_missing_key() {
    let mut src = MapSource::kv("s", json!({"a": "1"}));
    let text = r#"{{ with secret "s" }}{{ .Data.data.b }}{{ end }}"#;
    assert_eq!(render(&mut src, text).unwrap(), "<no value>");
    let opts = RenderOptions {
        error_on_missing_key: true,
        ..RenderOptions::with_env::<[(&str, &str); 0], _, _>([])
    };
    let err = render_with(&mut src, text, &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"template: t:1:29: executing "t" at <.Data.data.b>: map has no entry for key "b""#
    );
}

#[test]
fn errors_read_like_go() {
    let mut src = MapSource::kv("secret/data/t", json!({"n": 1, "s": "x"}));
    let cases = [
        (
            "abc\n{{ .Data.data.x }",
            r#"template: t:2: unexpected "}" in operand"#,
        ),
        (
            "{{ nosuch }}",
            r#"template: t:1: function "nosuch" not defined"#,
        ),
        ("{{ if true }}", "template: t:1: unexpected EOF"),
        ("{{ end }}", "template: t:1: unexpected {{end}}"),
        ("{{ $x }}", r#"template: t:1: undefined variable "$x""#),
        ("{{ break }}", "template: t:1: {{break}} outside {{range}}"),
        (
            "{{ \"a\".b }}",
            r#"template: t:1: unexpected . after term "\"a\"""#,
        ),
        (
            "{{ template \"x\" }}",
            "template: t:1: {{template}} is not supported by the secretvault agent's template engine",
        ),
        (
            "{{ 1 | 2 }}",
            "template: t:1: non executable command in pipeline stage 2",
        ),
        ("{{ (1 }}", "template: t:1: unclosed left paren"),
        ("{{\n.x", "template: t:2: unclosed action started at t:1"),
        (
            r#"{{ with secret "secret/data/t" }}{{ .Data.data.n | toUpper }}{{ end }}"#,
            r#"template: t:1:51: executing "t" at <toUpper>: wrong type for value; expected string; got json.Number"#,
        ),
        (
            r#"{{ with secret "secret/data/t" }}{{ .Data.data.missing.sub }}{{ end }}"#,
            r#"template: t:1:41: executing "t" at <.Data.data.missing.sub>: nil pointer evaluating interface {}.sub"#,
        ),
        (
            "{{ with secret \"secret/data/t\" }}\n{{ .Data.data.n.x }}{{ end }}",
            r#"template: t:2:8: executing "t" at <.Data.data.n.x>: can't evaluate field x in type interface {}"#,
        ),
        (
            r#"{{ with secret "secret/data/t" }}{{ .Foo }}{{ end }}"#,
            r#"template: t:1:36: executing "t" at <.Foo>: can't evaluate field Foo in type *dependency.Secret"#,
        ),
        (
            r#"{{ with secret "secret/data/t" }}{{ .Auth.ClientToken }}{{ end }}"#,
            r#"template: t:1:41: executing "t" at <.Auth.ClientToken>: nil pointer evaluating *dependency.SecretAuth.ClientToken"#,
        ),
        (
            r#"{{ secret "secret/data/t" "a=b" }}"#,
            r#"template: t:1:3: executing "t" at <secret "secret/data/t" "a=b">: error calling secret: the write form of secret (secret "secret/data/t" "k=v" …) is not supported by the secretvault agent; read the secret with secret "secret/data/t" alone"#,
        ),
        (
            r#"{{ secret "nope" }}"#,
            r#"template: t:1:3: executing "t" at <secret "nope">: error calling secret: vault.read(nope): no secret at nope"#,
        ),
        (
            "{{ eq 1 \"a\" }}",
            r#"template: t:1:3: executing "t" at <eq 1 "a">: error calling eq: incompatible types for comparison: int and string"#,
        ),
        (
            "{{ index 1 2 }}",
            r#"template: t:1:3: executing "t" at <index 1 2>: error calling index: can't index item of type int"#,
        ),
        (
            "{{ toUpper 3 }}",
            r#"template: t:1:11: executing "t" at <3>: expected string; found 3"#,
        ),
        (
            "{{ base64Decode \"!!\" }}",
            r#"template: t:1:3: executing "t" at <base64Decode "!!">: error calling base64Decode: base64Decode: illegal base64 data at input byte 0"#,
        ),
        (
            "{{ nil }}",
            r#"template: t:1:3: executing "t" at <nil>: nil is not a command"#,
        ),
        (
            "{{ range 1.5 }}{{ end }}",
            r#"template: t:1:9: executing "t" at <1.5>: range can't iterate over 1.5"#,
        ),
    ];
    for (text, want) in cases {
        let got = render(&mut src, text).map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()), "template {text:?}");
    }
}

#[test]
fn hostile_templates_hit_limits_not_the_stack() {
    let mut src = MapSource::default();
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    assert!(
        Template::parse("d", &deep_parens)
            .unwrap_err()
            .to_string()
            .contains("max expression depth exceeded")
    );
    let deep_ifs = format!("{}x{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
    assert!(
        Template::parse("d", &deep_ifs)
            .unwrap_err()
            .to_string()
            .contains("nested more than")
    );
    let opts = RenderOptions {
        max_output_bytes: 1000,
        ..RenderOptions::default()
    };
    let err = render_with(&mut src, "{{ range 100000 }}xxxxxxxxxx{{ end }}", &opts).unwrap_err();
    assert!(matches!(err, TemplateError::Limit { .. }), "{err}");
    let err = render(&mut src, "{{ range 1000000000 }}{{ end }}").unwrap_err();
    assert!(err.to_string().contains("steps of work"), "{err}");
    let err = render_with(
        &mut src,
        r#"{{ $x := "ab" }}{{ range 64 }}{{ $x = printf "%s%s" $x $x }}{{ end }}"#,
        &opts,
    )
    .unwrap_err();
    assert!(err.to_string().contains("output limit"), "{err}");
    let err = render_with(
        &mut src,
        r#"{{ replaceAll "" "0123456789" (printf "%900s" "") }}"#,
        &opts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("more than the output limit"),
        "{err}"
    );
    assert!(Template::parse("big", &"x".repeat(2 << 20)).is_err());
}

fn arb_template() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "{{",
        "}}",
        "{{- ",
        " -}}",
        " ",
        "\n",
        ".",
        ".Data",
        ".data",
        ".a",
        "$",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        "\"s\"",
        "`r`",
        "1",
        "-1",
        "1.5",
        "0x1f",
        "'c'",
        "nil",
        "true",
        "if",
        "else",
        "end",
        "with",
        "range",
        "break",
        "continue",
        "secret",
        "\"kv\"",
        "printf",
        "\"%d%s%v%q\"",
        "toJSON",
        "index",
        "len",
        "eq",
        "and",
        "or",
        "not",
        "slice",
        "split",
        "join",
        "\",\"",
        "replaceAll",
        "/*",
        "*/",
        ",",
        "x",
        "é",
        "\\",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(t) = Template::parse("p", &text) {
            let mut src = MapSource::kv("kv", json!({"a": {"b": [1, "x", null]}, "s": "v"}));
            let _ = t.render(&mut src, &RenderOptions::default());
            let _ = t.secret_paths();
        }
    }

    #[test]
    fn token_soup_never_panics(text in arb_template()) {
        if let Ok(t) = Template::parse("p", &text) {
            let mut src = MapSource::kv("kv", json!({"a": {"b": [1, "x", null]}, "s": "v"}));
            let opts = RenderOptions { max_output_bytes: 1 << 16, ..RenderOptions::default() };
            let _ = t.render(&mut src, &opts);
        }
    }
}
