//! Matrix results as a text table (per trigger/session and per dimension),
//! a JSON file of every run, and a hand-written SVG strip plot of
//! panic-to-prompt per configuration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::matrix::{RunResult, Verdict, firmware_name, keyboard_name};

#[derive(Default)]
struct Row {
    pass: usize,
    hang: usize,
    fail: usize,
    skip: usize,
    prompt_ms: Vec<f64>,
}

impl Row {
    fn add(&mut self, r: &RunResult) {
        match r.verdict {
            Verdict::Pass => self.pass += 1,
            Verdict::Hang => self.hang += 1,
            Verdict::Fail => self.fail += 1,
            Verdict::Skip => self.skip += 1,
        }
        if let Some(ms) = r.panic_to_prompt_ms {
            self.prompt_ms.push(ms);
        }
    }

    fn line(&self, key: &str) -> String {
        let mut v = self.prompt_ms.clone();
        v.sort_by(f64::total_cmp);
        let (med, worst) = match v.len() {
            0 => ("-".to_string(), "-".to_string()),
            n => (format!("{:.0}", median(&v)), format!("{:.0}", v[n - 1])),
        };
        format!(
            "{key:<34} {:>5} {:>5} {:>5} {:>5} {:>9} {:>9}",
            self.pass, self.hang, self.fail, self.skip, med, worst
        )
    }
}

/// Median of a sorted, non-empty slice.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn group(results: &[RunResult], key: impl Fn(&RunResult) -> String) -> BTreeMap<String, Row> {
    let mut m: BTreeMap<String, Row> = BTreeMap::new();
    for r in results {
        m.entry(key(r)).or_default().add(r);
    }
    m
}

/// The summary table: per trigger/session, per dimension, and in total.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<34} {:>5} {:>5} {:>5} {:>5} {:>9} {:>9}",
        "", "pass", "hang", "fail", "skip", "median", "worst"
    );
    let _ = writeln!(
        out,
        "panic-to-prompt in ms (source: {})",
        prompt_source(results)
    );
    type Key = fn(&RunResult) -> String;
    let sections: [(&str, Key); 6] = [
        ("trigger/session", |r| {
            format!("{}/{}", r.scenario.trigger, r.scenario.session_name())
        }),
        ("controller", |r| r.scenario.controller.clone()),
        ("firmware", |r| firmware_name(r.scenario.firmware).into()),
        ("smp", |r| format!("smp{}", r.scenario.smp)),
        ("keyboard", |r| keyboard_name(r.scenario.keyboard).into()),
        ("session", |r| r.scenario.session_name().into()),
    ];
    for (title, key) in sections {
        let _ = writeln!(
            out,
            "\n{}",
            header.replacen(&" ".repeat(title.len()), title, 1)
        );
        for (k, row) in group(results, key) {
            let _ = writeln!(out, "{}", row.line(&k));
        }
    }
    let mut all = Row::default();
    results.iter().for_each(|r| all.add(r));
    let _ = writeln!(out, "\n{}", all.line("TOTAL"));
    let skips = group(
        &results
            .iter()
            .filter(|r| r.verdict == Verdict::Skip)
            .cloned()
            .collect::<Vec<_>>(),
        |r| r.reason.clone(),
    );
    for (reason, row) in skips {
        let _ = writeln!(out, "skipped {:>4}: {reason}", row.skip);
    }
    for r in results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Hang | Verdict::Fail))
    {
        let _ = writeln!(
            out,
            "{} {} rep {}: {}\n    logs: {}",
            r.verdict.name().to_uppercase(),
            r.scenario.name(),
            r.rep,
            r.reason,
            r.logs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    out
}

fn prompt_source(results: &[RunResult]) -> &'static str {
    if results.iter().any(|r| r.prompt_source == "kernel") {
        "kernel-printed figure"
    } else {
        "host wall time from seeing `PANIC on cpu` to seeing `db> `"
    }
}

/// Every run as JSON.
pub fn json(results: &[RunResult]) -> serde_json::Value {
    let runs: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "name": r.scenario.name(),
                "trigger": r.scenario.trigger,
                "session": r.scenario.session_name(),
                "controller": r.scenario.controller,
                "firmware": firmware_name(r.scenario.firmware),
                "smp": r.scenario.smp,
                "keyboard": keyboard_name(r.scenario.keyboard),
                "rep": r.rep,
                "verdict": r.verdict.name(),
                "reason": r.reason,
                "panic_to_prompt_ms": r.panic_to_prompt_ms,
                "panic_to_prompt_source": r.prompt_source,
                "panic_to_usb_ready_ms": r.usb_ready_ms,
                "wall_s": r.wall_s,
                "logs": r.logs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "runs": runs })
}

/// A strip plot: one row per configuration, one dot per run (red for a
/// hang or failure, placed at the right edge), a tick at the median.
pub fn svg(results: &[RunResult]) -> String {
    let rows = group(results, |r| r.scenario.configuration());
    let max = results
        .iter()
        .filter_map(|r| r.panic_to_prompt_ms)
        .fold(1.0f64, f64::max)
        * 1.1;
    let (left, top, width, row_h) = (260.0, 40.0, 600.0, 18.0);
    let height = top + row_h * rows.len() as f64 + 50.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="11">"#,
        left + width + 40.0
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="13">panic-to-prompt (ms) per configuration; {} runs; red = hang/fail</text>"#,
        results.len()
    );
    for i in 0..=5 {
        let v = max * i as f64 / 5.0;
        let x = left + width * i as f64 / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{v:.0}</text>"##,
            height - 40.0,
            height - 25.0
        );
    }
    for (i, (cfg, _)) in rows.iter().enumerate() {
        let y = top + row_h * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{cfg}</text>"#,
            left - 8.0,
            y + 4.0
        );
        let mut ms: Vec<f64> = Vec::new();
        for (j, r) in results
            .iter()
            .filter(|r| r.scenario.configuration() == *cfg)
            .enumerate()
        {
            let jitter = ((j * 7919) % 11) as f64 - 5.0;
            match (r.verdict, r.panic_to_prompt_ms) {
                (Verdict::Hang | Verdict::Fail, _) => {
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="red"><title>{} rep {}: {}</title></circle>"#,
                        left + width,
                        y + jitter * 0.8,
                        r.scenario.name(),
                        r.rep,
                        xml_escape(&r.reason)
                    );
                }
                (_, Some(v)) => {
                    ms.push(v);
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="steelblue" fill-opacity="0.6"><title>{} rep {}: {v:.0} ms</title></circle>"#,
                        left + width * v / max,
                        y + jitter * 0.8,
                        r.scenario.name(),
                        r.rep
                    );
                }
                _ => {}
            }
        }
        if !ms.is_empty() {
            ms.sort_by(f64::total_cmp);
            let x = left + width * median(&ms) / max;
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="black" stroke-width="2"/>"#,
                y - 7.0,
                y + 7.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `matrix.json` and `matrix.svg` (and `summary.txt`) into `dir`.
pub fn write(results: &[RunResult], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("matrix.json"),
        serde_json::to_string_pretty(&json(results)).unwrap_or_default(),
    )?;
    std::fs::write(dir.join("matrix.svg"), svg(results))?;
    std::fs::write(dir.join("summary.txt"), table(results))
}
