//! Turns the JSON lines of a run into the Markdown table: workload | metric | Bulwark |
//! peer | peer value | advantage (> 1 means Bulwark is better, whatever the direction).

use anyhow::{Context, Result};
use serde_json::Value;

/// Metrics shown per workload kind, in order.
fn metrics_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "smtp" => &[
            "delivered_per_s",
            "acked_per_s",
            "p50_ms",
            "p99_ms",
            "cpu_busy_pct",
            "cpu_postgres_pct",
            "cpu_bulwark_pct",
        ],
        "imap-mixed" => &[
            "ops_per_s",
            "p50_ms",
            "p99_ms",
            "cpu_busy_pct",
            "cpu_postgres_pct",
            "cpu_bulwark_pct",
        ],
        "imap-big" => &[
            "select_ms",
            "first_select_ms",
            "fetch_envelope_ms",
            "fetch_envelope_first_ms",
            "search_subject_ms",
            "search_from_ms",
            "search_body_ms",
        ],
        "imap-idle-rss" => &["rss_per_conn_kb", "pss_per_conn_kb"],
        "jmap" => &[
            "requests_per_s",
            "p50_ms",
            "p99_ms",
            "cpu_busy_pct",
            "cpu_postgres_pct",
            "cpu_bulwark_pct",
        ],
        _ => &[],
    }
}

/// The protocol ceiling (smtp-sink stores nothing) only makes sense as a rate; the acked
/// rate differs from the delivered one only for a queueing MTA.
fn shown_for_peer(metric: &str, peer: &Value) -> bool {
    let server = peer["server"].as_str().unwrap_or("");
    match metric {
        "delivered_per_s" => true,
        "acked_per_s" => !peer["delivered"].is_null(),
        _ => server != "smtp-sink",
    }
}

fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("_per_s")
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn render(results_file: &str) -> Result<String> {
    let text =
        std::fs::read_to_string(results_file).with_context(|| format!("read {results_file}"))?;
    let rows: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut workloads: Vec<String> = Vec::new();
    for r in &rows {
        if let Some(w) = r["workload"].as_str()
            && !workloads.iter().any(|x| x == w)
        {
            workloads.push(w.to_string());
        }
    }
    let mut out = String::from(
        "| workload | metric | Bulwark | peer | peer value | Bulwark advantage |\n\
         | --- | --- | ---: | --- | ---: | ---: |\n",
    );
    for w in &workloads {
        let of_w: Vec<&Value> = rows
            .iter()
            .filter(|r| r["workload"] == w.as_str())
            .collect();
        let bulwark = of_w.iter().find(|r| r["server"] == "bulwark");
        let peers: Vec<&&Value> = of_w.iter().filter(|r| r["server"] != "bulwark").collect();
        let kind = of_w.first().and_then(|r| r["kind"].as_str()).unwrap_or("");
        if let Some(b) = bulwark
            && let Some(reason) = b["skipped"].as_str()
        {
            out.push_str(&format!("| {w} | — | skipped: {reason} | | | |\n"));
            continue;
        }
        for m in metrics_for(kind) {
            let bv = bulwark.and_then(|b| b[*m].as_f64());
            let bs = bulwark
                .map(|b| {
                    if let Some(e) = b["error"].as_str() {
                        format!("failed: {e}")
                    } else {
                        bv.map(fmt).unwrap_or_else(|| "—".into())
                    }
                })
                .unwrap_or_else(|| "not run".into());
            let with_values: Vec<&&&Value> = peers
                .iter()
                .filter(|p| p[*m].is_f64() || p[*m].is_u64())
                .filter(|p| shown_for_peer(m, p))
                .collect();
            if with_values.is_empty() {
                if bv.is_some() || peers.is_empty() {
                    out.push_str(&format!("| {w} | {m} | {bs} | (none) | | |\n"));
                }
                continue;
            }
            for p in with_values {
                let pv = p[*m].as_f64().unwrap_or(0.0);
                let adv = match bv {
                    // CPU shares say where the machine's time went; not a score.
                    _ if m.starts_with("cpu_") => "(CPU share)".into(),
                    Some(b) if b > 0.0 && pv > 0.0 => {
                        let r = if higher_is_better(m) { b / pv } else { pv / b };
                        format!("{r:.2}×")
                    }
                    _ => "—".into(),
                };
                let peer = p["server"].as_str().unwrap_or("?");
                out.push_str(&format!(
                    "| {w} | {m} | {bs} | {peer} | {} | {adv} |\n",
                    fmt(pv)
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_is_above_one_when_bulwark_is_better_in_both_directions() {
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let f = dir.join("r.jsonl");
        std::fs::write(
            &f,
            concat!(
                r#"{"workload":"w","kind":"smtp","server":"bulwark","delivered_per_s":200.0,"acked_per_s":200.0,"p50_ms":1.0,"p99_ms":2.0}"#, "\n",
                r#"{"workload":"w","kind":"smtp","server":"peer","delivered_per_s":100.0,"acked_per_s":100.0,"p50_ms":2.0,"p99_ms":8.0}"#, "\n",
            ),
        )
        .ok();
        let t = render(f.to_str().unwrap_or_default()).unwrap_or_default();
        assert!(
            t.contains("| w | delivered_per_s | 200 | peer | 100 | 2.00× |"),
            "{t}"
        );
        assert!(
            t.contains("| w | p99_ms | 2.00 | peer | 8.00 | 4.00× |"),
            "{t}"
        );
    }
}
