//! `svctl policy …`: ACL policies under `sys/policies/acl`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{connect, go_io_error};
use crate::Error;
use crate::args::{
    HttpArgs, PolicyCommand, PolicyListArgs, PolicyNameArgs, PolicyReadArgs, PolicyWriteArgs,
};
use crate::client::Body;
use crate::output::{Format, Json, Ui};

pub fn run(cmd: PolicyCommand, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    match cmd {
        PolicyCommand::Write(a) => write(a, http, ui),
        PolicyCommand::Read(a) => read(a, http, ui),
        PolicyCommand::List(a) => list(a, http, ui),
        PolicyCommand::Delete(a) => delete(a, http, ui),
    }
}

/// Policy names are stored lower-case.
fn policy_name(name: &str) -> String {
    name.trim().to_lowercase()
}

fn write(a: PolicyWriteArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let name = policy_name(&a.name);
    let file = a.file.trim();
    let rules = if file == "-" {
        let mut rules = String::new();
        ui.stdin
            .read_to_string(&mut rules)
            .map_err(|e| Error::Usage(format!("Error reading policy: {e}")))?;
        rules
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            Error::Remote(format!(
                "Error opening policy file: {}",
                go_io_error("open", file, &e)
            ))
        })?
    };
    let client = connect(http, ui)?;
    let body = json!({ "policy": rules });
    client
        .request(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            &[],
            Body::Json(&body),
        )
        .map_err(|e| Error::api("Error uploading policy", e))?;
    if a.name != name {
        ui.error(&format!(
            "Policy name was converted from \"{}\" to \"{name}\"",
            a.name
        ));
    }
    ui.output(&format!("Success! Uploaded policy: {name}"));
    Ok(())
}

fn read(a: PolicyReadArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let name = policy_name(&a.name);
    let client = connect(http, ui)?;
    let context = || format!("Error reading policy named {name}");
    let response = client
        .send(
            Method::GET,
            &format!("sys/policies/acl/{name}"),
            &[],
            Body::None,
        )
        .map_err(|e| Error::api(context(), e))?;
    let rules = if response.status == StatusCode::NOT_FOUND {
        String::new()
    } else {
        let secret = client
            .secret_from(response)
            .map_err(|e| Error::api(context(), e))?;
        let data = secret.and_then(|s| s.data).ok_or_else(|| {
            Error::Remote(format!("{}: data from server response is empty", context()))
        })?;
        match data.get("policy") {
            Some(Value::String(rules)) => rules.clone(),
            _ => {
                return Err(Error::Remote(format!(
                    "{}: no policy found in response",
                    context()
                )));
            }
        }
    };
    if rules.is_empty() {
        return Err(Error::Remote(format!("No policy named: {name}")));
    }
    match a.format.format {
        Format::Table => ui.output(rules.trim()),
        Format::Json => {
            ui.output(&Json::Object(vec![("policy".to_owned(), Json::String(rules))]).pretty())
        }
    }
    Ok(())
}

fn list(a: PolicyListArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let client = connect(http, ui)?;
    let response = client
        .request(
            Method::GET,
            "sys/policies/acl",
            &[("list", "true")],
            Body::None,
        )
        .map_err(|e| Error::api("Error listing policies", e))?;
    let secret = client
        .secret_from(response)
        .map_err(|e| Error::api("Error listing policies", e))?;
    let keys = secret
        .as_ref()
        .and_then(|s| s.data_field("keys"))
        .ok_or_else(|| {
            Error::Remote("Error listing policies: data from server response is empty".to_owned())
        })?;
    let names: Vec<String> = serde_json::from_value(keys.clone()).map_err(|_| {
        Error::Remote(format!(
            "Error listing policies: the server's keys are not a list of names: {keys}"
        ))
    })?;
    match a.format.format {
        Format::Table => {
            for name in &names {
                ui.output(name);
            }
        }
        Format::Json => ui.output(&Json::string_list(&names).pretty()),
    }
    Ok(())
}

fn delete(a: PolicyNameArgs, http: &HttpArgs, ui: &mut Ui) -> Result<(), Error> {
    let name = policy_name(&a.name);
    let client = connect(http, ui)?;
    client
        .request(
            Method::DELETE,
            &format!("sys/policies/acl/{name}"),
            &[],
            Body::None,
        )
        .map_err(|e| Error::api(format!("Error deleting {name}"), e))?;
    ui.output(&format!("Success! Deleted policy: {name}"));
    Ok(())
}
