//! Against a real OpenBao dev server, with token-file auth, the agent renders exactly the
//! bytes `bao agent` (OpenBao's Vault Agent, embedding consul-template) renders for the
//! same templates — including the KV v2 path shim (`secret/nasty` → `secret/data/nasty`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, SEED_TEMPLATE};
use secretvault_testsupport::{BAO_ROOT_TOKEN, BaoDev};
use serde_json::json;

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

fn templates() -> Vec<(&'static str, &'static str)> {
    vec![
        ("seed", SEED_TEMPLATE),
        (
            "shim-and-range",
            r#"{{ with secret "secret/nasty" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}
{{ end }}version={{ .Data.metadata.version }}{{ end }}"#,
        ),
        (
            "json",
            r#"{{ with secret "secret/data/nasty" -}}
{{ .Data.data | toJSON }}
{{ .Data.data.obj | toJSONPretty }}
{{- end }}"#,
        ),
        (
            "functions",
            r#"{{ with secret "secret/data/lobstack/api-keys" -}}
{{ .Data.data.openai_api_key | toUpper }} {{ base64Encode .Data.data.stripe_secret_key }} [{{ trimSpace .Data.data.stripe_secret_key }}]
{{ replaceAll "sk" "SK" .Data.data.anthropic_api_key }} {{ env "SV_AGENT_TEST_VAR" }} {{ .Data.data.missing }}
{{- end }}
{{ if (secret "secret/data/nasty").Data.data.true }}two secrets{{ else }}no{{ end }}"#,
        ),
    ]
}

fn run_bao_agent(bao: &BaoDev, dir: &Path, token_file: &Path) -> String {
    let mut cfg = format!(
        "vault {{\n  address = \"{}\"\n}}\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = \"{}\"\n    }}\n  }}\n}}\nexit_after_auth = true\n",
        bao.url(),
        token_file.display()
    );
    for (name, _) in templates() {
        cfg.push_str(&format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n}}\n",
            dir.join(format!("{name}.tpl")).display(),
            dir.join("bao").join(name).display()
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
        .env("SV_AGENT_TEST_VAR", "from the environment")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning bao agent");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
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
    log
}

#[test]
fn renders_exactly_what_bao_agent_renders() {
    let Some(bao) = BaoDev::start("renders_exactly_what_bao_agent_renders") else {
        return;
    };
    write_secret(
        &bao,
        "lobstack/api-keys",
        json!({
            "anthropic_api_key": "sk-ant-\"quoted\" $dollar `tick` \\slash\nnewline <>&",
            "openai_api_key": "sk-proj-ünïcødé 😀",
            "stripe_secret_key": "  sk_live_spaces  ",
        }),
    );
    write_secret(
        &bao,
        "nasty",
        json!({
            "str": "héllo", "quotes": "it's \"q\" $HOME \\", "int": 42, "float": 1.5,
            "true": true, "null": null, "list": [1, "two", null], "obj": {"b": 2, "a": "x"},
            "html": "<b>&</b>",
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, BAO_ROOT_TOKEN).unwrap();
    for (name, text) in templates() {
        std::fs::write(dir.path().join(format!("{name}.tpl")), text).unwrap();
    }
    let bao_log = run_bao_agent(&bao, dir.path(), &token_file);

    let secrets: Vec<serde_json::Value> = templates()
        .iter()
        .map(|(name, text)| {
            json!({"name": name, "template": text, "file": dir.path().join("ours").join(name)})
        })
        .collect();
    let cfg = common::token_file_config(&bao.url(), &token_file, json!(secrets));
    let path = dir.path().join("ours.json");
    std::fs::write(&path, cfg.to_string()).unwrap();
    let mut cmd = Command::new(common::agent_binary());
    cmd.args(["init", "--config"])
        .arg(&path)
        .env("SV_AGENT_TEST_VAR", "from the environment");
    let mut agent = Agent::spawn(cmd);
    let status = agent
        .wait(Duration::from_secs(30))
        .expect("the agent exits");
    assert!(status.success(), "{}", agent.log());

    let mut mismatches = Vec::new();
    for (name, _) in templates() {
        let theirs = std::fs::read(dir.path().join("bao").join(name))
            .unwrap_or_else(|e| panic!("bao agent wrote no {name}: {e}\n{bao_log}"));
        let ours = std::fs::read(dir.path().join("ours").join(name)).unwrap();
        if ours != theirs {
            mismatches.push(format!(
                "{name}:\n  bao agent: {:?}\n  ours:      {:?}",
                String::from_utf8_lossy(&theirs),
                String::from_utf8_lossy(&ours)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
