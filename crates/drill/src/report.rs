//! The figure table each drill prints, and the JSON written by `--json FILE`.

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub drill: String,
    pub nodes: usize,
    pub acked: u64,
    pub found: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub client_errors: u64,
    /// Seconds from the fault (or its end, for outages) until every client kind succeeded again;
    /// `None` when some kind never did.
    pub recover_seconds: Option<f64>,
    pub relogins: u64,
    /// Seconds verification waited for acknowledged mail to appear (spool replay).
    pub verify_seconds: f64,
    pub successful_operations: u64,
    /// The longest single client operation (a stall that ended well still shows here).
    pub longest_operation_seconds: f64,
    pub load_seconds: f64,
    /// Why the drill was skipped (then the figures are empty and it does not fail).
    pub skipped: Option<String>,
    /// What went wrong besides the figures (a node died, a step failed).
    pub failures: Vec<String>,
    /// What the clients saw (first few error texts) and other observations.
    pub notes: Vec<String>,
}

impl Figures {
    pub fn skipped(drill: &str, why: String) -> Figures {
        Figures {
            drill: drill.to_string(),
            skipped: Some(why),
            ..Figures::default()
        }
    }

    pub fn failed(drill: &str, why: String) -> Figures {
        Figures {
            drill: drill.to_string(),
            failures: vec![why],
            ..Figures::default()
        }
    }

    /// lost = 0, duplicated = 0, re-logins = 0, clients recovered, no failed step.
    pub fn passed(&self) -> bool {
        self.skipped.is_some()
            || (self.lost == 0
                && self.duplicated == 0
                && self.relogins == 0
                && self.recover_seconds.is_some()
                && self.failures.is_empty()
                && self.acked > 0)
    }

    fn verdict(&self) -> &'static str {
        match (&self.skipped, self.passed()) {
            (Some(_), _) => "skipped",
            (None, true) => "pass",
            (None, false) => "FAIL",
        }
    }
}

const HEADER: [&str; 9] = [
    "drill",
    "acked",
    "found",
    "lost",
    "duplicated",
    "client errors",
    "recover s",
    "re-logins",
    "result",
];

/// A Markdown table (readable in a terminal, pasteable into the README).
pub fn table(all: &[Figures]) -> String {
    let mut rows: Vec<[String; 9]> = Vec::new();
    for f in all {
        let num = |n: u64| {
            if f.skipped.is_some() {
                "-".to_string()
            } else {
                n.to_string()
            }
        };
        let recover = match (&f.skipped, f.recover_seconds) {
            (Some(_), _) => "-".to_string(),
            (None, Some(s)) => format!("{s:.1}"),
            (None, None) => "never".to_string(),
        };
        rows.push([
            f.drill.clone(),
            num(f.acked),
            num(f.found),
            num(f.lost),
            num(f.duplicated),
            num(f.client_errors),
            recover,
            num(f.relogins),
            f.verdict().to_string(),
        ]);
    }
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 || i == 8 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(HEADER.to_vec());
    // Markdown alignment row: numbers right-aligned (`---:`), names and verdicts left.
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 || i == 8 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The notes under the table: why a drill was skipped or failed, and what clients saw.
pub fn details(all: &[Figures]) -> String {
    let mut out = String::new();
    for f in all {
        if let Some(why) = &f.skipped {
            out.push_str(&format!("{}: skipped: {why}\n", f.drill));
        }
        for why in &f.failures {
            out.push_str(&format!("{}: FAILED: {why}\n", f.drill));
        }
        for note in &f.notes {
            out.push_str(&format!("{}: {note}\n", f.drill));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(name: &str) -> Figures {
        Figures {
            drill: name.to_string(),
            acked: 10,
            found: 10,
            recover_seconds: Some(1.25),
            ..Figures::default()
        }
    }

    #[test]
    fn a_drill_passes_only_with_nothing_lost_duplicated_or_relogged() {
        assert!(clean("a").passed());
        for broken in [
            Figures {
                lost: 1,
                ..clean("b")
            },
            Figures {
                duplicated: 1,
                ..clean("b")
            },
            Figures {
                relogins: 1,
                ..clean("b")
            },
            Figures {
                recover_seconds: None,
                ..clean("b")
            },
            Figures {
                acked: 0,
                ..clean("b")
            },
            Figures {
                failures: vec!["node died".into()],
                ..clean("b")
            },
        ] {
            assert!(!broken.passed(), "{broken:?}");
        }
        assert!(Figures::skipped("p", "no netns".into()).passed());
    }

    #[test]
    fn table_has_one_aligned_row_per_drill() {
        let t = table(&[
            clean("node-kill"),
            Figures::skipped("partition", "x".into()),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("| drill "));
        assert!(
            lines[2].contains("node-kill") && lines[2].contains("1.2") && lines[2].contains("pass")
        );
        assert!(lines[3].contains("skipped"));
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{t}");
    }
}
