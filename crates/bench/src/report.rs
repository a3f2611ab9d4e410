//! Tables for people, JSON for scripts.

use serde_json::{Value, json};

use crate::Args;
use crate::load::LoadResult;
use crate::servers::{Results, ServerResult, WORKLOADS};

fn result<'a>(server: &'a ServerResult, workload: &str) -> Option<&'a LoadResult> {
    server
        .workloads
        .iter()
        .find(|(w, _)| *w == workload)
        .and_then(|(_, r)| r.as_ref())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "—".into(),
    }
}

pub fn print(results: &Results, args: &Args) {
    println!();
    println!(
        "secretvault bench: {} connections, {:?} per workload after {:?} warm-up, {}-byte payloads, audit to a file",
        args.concurrency, args.duration, args.warmup, args.payload_bytes
    );
    println!();
    println!(
        "{:<16} {:<12} {:>10} {:>9} {:>9} {:>9} {:>8} {:>10} {:>11} {:>11}",
        "workload",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "vs bare",
        "vs openbao",
        "CPU µs/req"
    );
    println!("{}", "-".repeat(114));
    for workload in WORKLOADS {
        let bare_rps = result(&results.bare, workload).map(LoadResult::rps);
        let bao_rps = results
            .openbao
            .as_ref()
            .and_then(|o| result(o, workload))
            .map(LoadResult::rps);
        let mut rows: Vec<&ServerResult> = vec![&results.secretvault];
        if let Some(o) = &results.openbao {
            rows.push(o);
        }
        rows.push(&results.bare);
        for server in rows {
            match result(server, workload) {
                Some(r) => println!(
                    "{:<16} {:<12} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>10} {:>11} {:>11}",
                    workload,
                    server.name,
                    r.rps(),
                    r.ms(0.50),
                    r.ms(0.99),
                    r.ms(0.999),
                    r.errors,
                    if server.name == "bare hyper" {
                        "1.00x".into()
                    } else {
                        ratio(Some(r.rps()), bare_rps)
                    },
                    if server.name == "bare hyper" {
                        "—".into()
                    } else {
                        ratio(Some(r.rps()), bao_rps)
                    },
                    r.cpu_us_per_request()
                        .map_or("—".into(), |us| format!("{us:.1}")),
                ),
                None => println!("{:<16} {:<12} {:>10}", workload, server.name, "n/a"),
            }
            if let Some(e) = result(server, workload).and_then(|r| r.first_error.as_ref()) {
                println!(
                    "{:<16} first error: {}",
                    "",
                    e.chars().take(160).collect::<String>()
                );
            }
        }
        println!();
    }
    println!("peak RSS (VmHWM):");
    let ours = results.secretvault.peak_rss_kib;
    let theirs = results.openbao.as_ref().and_then(|o| o.peak_rss_kib);
    for server in [
        Some(&results.secretvault),
        results.openbao.as_ref(),
        Some(&results.bare),
    ]
    .into_iter()
    .flatten()
    {
        match server.peak_rss_kib {
            Some(kib) => println!("  {:<12} {:>8.1} MiB", server.name, kib as f64 / 1024.0),
            None => println!("  {:<12} {:>8}", server.name, "n/a"),
        }
    }
    if let (Some(a), Some(b)) = (ours, theirs) {
        println!("  secretvault / openbao = {:.2}", a as f64 / b as f64);
    }
}

fn server_json(server: &ServerResult) -> Value {
    let workloads: serde_json::Map<String, Value> = server
        .workloads
        .iter()
        .map(|(w, r)| {
            let v = match r {
                Some(r) => json!({
                    "requests_per_sec": r.rps(),
                    "p50_ms": r.ms(0.50),
                    "p99_ms": r.ms(0.99),
                    "p999_ms": r.ms(0.999),
                    "requests": r.requests,
                    "errors": r.errors,
                    "server_cpu_us_per_request": r.cpu_us_per_request(),
                }),
                None => Value::Null,
            };
            (w.to_string(), v)
        })
        .collect();
    json!({ "name": server.name, "workloads": workloads, "peak_rss_kib": server.peak_rss_kib, "note": server.note })
}

pub fn json(results: &Results) -> Value {
    let mut ratios = serde_json::Map::new();
    for workload in WORKLOADS {
        let ours = result(&results.secretvault, workload).map(LoadResult::rps);
        let bare = result(&results.bare, workload).map(LoadResult::rps);
        let bao = results
            .openbao
            .as_ref()
            .and_then(|o| result(o, workload))
            .map(LoadResult::rps);
        ratios.insert(
            workload.into(),
            json!({
                "vs_bare": ours.zip(bare).map(|(a, b)| a / b),
                "vs_openbao": ours.zip(bao).map(|(a, b)| a / b),
            }),
        );
    }
    json!({
        "secretvault": server_json(&results.secretvault),
        "openbao": results.openbao.as_ref().map(server_json),
        "bare": server_json(&results.bare),
        "ratios": ratios,
        "rss_ratio_vs_openbao": results.secretvault.peak_rss_kib.zip(results.openbao.as_ref().and_then(|o| o.peak_rss_kib)).map(|(a, b)| a as f64 / b as f64),
    })
}
