//! bulwark-bench: the load generator behind `bench/run`. One process, many connections
//! (tokio), raw SMTP/LMTP, IMAP and HTTP. Each workload prints one JSON line on stdout
//! (tagged with --workload/--server) and a short human summary on stderr.

mod cpu;
mod idle_rss;
mod imap;
mod imap_big;
mod imap_mixed;
mod jmap;
mod maildir;
mod message;
mod report;
mod smtp;
mod stats;
mod wire;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "bulwark-bench",
    about = "Mail server load generator (SMTP, IMAP, JMAP)"
)]
struct Cli {
    /// Label of the workload row in the results table.
    #[arg(long, global = true, default_value = "")]
    workload: String,
    /// Which server this run measures (`bulwark` or a peer name).
    #[arg(long, global = true, default_value = "")]
    server: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// SMTP (or LMTP) ingest: sessions loop MAIL/RCPT/DATA.
    Smtp(smtp::SmtpArgs),
    /// Mixed IMAP client workload.
    ImapMixed(imap_mixed::MixedArgs),
    /// Big mailbox: populate, then time SELECT, FETCH ENVELOPE, SEARCH.
    ImapBig(imap_big::BigArgs),
    /// Memory per idle authenticated IMAP connection.
    ImapIdleRss(idle_rss::IdleArgs),
    /// JMAP Email/query + Email/get.
    Jmap(jmap::JmapArgs),
    /// Write a maildir folder with N messages (peer population).
    PopulateMaildir(maildir::PopulateArgs),
    /// Render the Markdown table from a results file.
    Report {
        #[arg(long)]
        results: String,
    },
}

fn kind(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Smtp(_) => "smtp",
        Cmd::ImapMixed(_) => "imap-mixed",
        Cmd::ImapBig(_) => "imap-big",
        Cmd::ImapIdleRss(_) => "imap-idle-rss",
        Cmd::Jmap(_) => "jmap",
        Cmd::PopulateMaildir(_) => "populate-maildir",
        Cmd::Report { .. } => "report",
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let kind = kind(&cli.cmd);
    let cpu_before = cpu::sample();
    let result: Result<Value> = match cli.cmd {
        Cmd::Smtp(a) => smtp::run(a).await,
        Cmd::ImapMixed(a) => imap_mixed::run(a).await,
        Cmd::ImapBig(a) => imap_big::run(a).await,
        Cmd::ImapIdleRss(a) => idle_rss::run(a).await,
        Cmd::Jmap(a) => jmap::run(a).await,
        Cmd::PopulateMaildir(a) => maildir::populate(&a),
        Cmd::Report { results } => match report::render(&results) {
            Ok(table) => {
                print!("{table}");
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("report: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let (mut value, code) = match result {
        Ok(v) => (v, std::process::ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{kind} failed: {e:#}");
            (
                json!({"error": format!("{e:#}")}),
                std::process::ExitCode::FAILURE,
            )
        }
    };
    if let Value::Object(fields) = &mut value {
        fields.extend(cpu::figures(&cpu_before, &cpu::sample()));
    }
    value["kind"] = json!(kind);
    value["workload"] = json!(cli.workload);
    value["server"] = json!(cli.server);
    println!("{value}");
    eprintln!("{}", human(&value));
    code
}

/// One line for people: the headline numbers of a result.
fn human(v: &Value) -> String {
    let mut parts = vec![format!(
        "{:<28} {:<16}",
        v["workload"].as_str().unwrap_or(""),
        v["server"].as_str().unwrap_or("")
    )];
    for k in [
        "delivered_per_s",
        "acked_per_s",
        "ops_per_s",
        "requests_per_s",
        "p50_ms",
        "p99_ms",
        "select_ms",
        "fetch_envelope_ms",
        "search_subject_ms",
        "search_from_ms",
        "search_body_ms",
        "rss_per_conn_kb",
        "pss_per_conn_kb",
        "cpu_busy_pct",
        "cpu_postgres_pct",
        "cpu_bulwark_pct",
        "errors",
        "failures",
        "skipped",
        "error",
    ] {
        if !v[k].is_null() {
            parts.push(format!("{k}={}", v[k]));
        }
    }
    parts.join(" ")
}
