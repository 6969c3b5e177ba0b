//! The single HTML page: notes, Table 1, task changes, plots (inline SVG), stage timings,
//! example trajectories turn by turn with their diffs, and the resolved configuration.
//! Self-contained (no script, no external file), so it opens from any folder.

use std::fmt::Write;

use swerl_trajectory::Trajectory;

use crate::{pass1, pass_k, pct, plots, task_changes, Example, Report};

/// Observation text shown per turn before it is cut (with a marker saying so).
const OBSERVATION_CHARS: usize = 1_500;

const STYLE: &str =
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}\
td.n{text-align:right}pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap}\
.turn{border-left:3px solid #1f77b4;margin:1em 0;padding-left:1em}.obs{border-left-color:#999}\
.add{color:#176117;background:#e6ffe6}.del{color:#8b1a1a;background:#ffe6e6}.hunk{color:#555}\
.note{background:#fff8e0;padding:8px;border:1px solid #e0c060}.bad{color:#8b1a1a}";

/// Renders the whole report as one HTML document.
pub fn render_html(report: &Report) -> String {
    let mut h = String::new();
    let title = escape(&report.title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p>{}</p>\n",
        escape(&report.provenance)
    );
    for note in &report.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", escape(note));
    }
    table1(&mut h, report);
    changes(&mut h, report);
    h.push_str("<h2>Plots</h2>\n");
    for plot in plots(report) {
        let _ = writeln!(h, "<figure>{}</figure>", plot.svg);
    }
    timings(&mut h, report);
    h.push_str("<h2>Trajectories</h2>\n");
    for example in &report.examples {
        trajectory(&mut h, example);
    }
    let config = serde_json::to_string_pretty(&report.config).unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Resolved configuration</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&config)
    );
    h
}

fn table1(h: &mut String, report: &Report) {
    h.push_str(
        "<h2>Table 1: our model per stage</h2>\n<table><tr><th>stage</th><th>train Pass@1 (%)</th>\
         <th>train Pass@k (%)</th><th>held-out Pass@1 (%)</th><th>held-out Pass@k (%)</th>\
         <th>submit share (%)</th><th>mean turns</th><th>note</th></tr>\n",
    );
    for s in &report.stages {
        let (tr, ho) = (s.train.as_ref(), s.heldout.as_ref());
        let all: Vec<_> = [tr, ho].into_iter().flatten().collect();
        let n: usize = all.iter().map(|e| e.episodes).sum();
        let avg = |f: fn(&swerl_rollout::EvalSummary) -> f64| {
            (n > 0).then(|| all.iter().map(|e| f(e) * e.episodes as f64).sum::<f64>() / n as f64)
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
            escape(&s.stage),
            pass1(tr),
            pass_k(tr),
            pass1(ho),
            pass_k(ho),
            avg(|e| e.submit_share).map_or_else(|| "-".into(), pct),
            avg(|e| e.mean_turns).map_or_else(|| "-".into(), |t| format!("{t:.1}")),
            escape(s.note.as_deref().unwrap_or("")),
        );
    }
    h.push_str(
        "</table>\n<p>Pass@1: mean over k runs ± standard error of the mean; Pass@k: \
                unbiased estimator over the same runs; infrastructure failures are excluded \
                from every rate.</p>\n",
    );
}

fn changes(h: &mut String, report: &Report) {
    let changes = task_changes(&report.stages);
    let improved: Vec<_> = changes.iter().filter(|c| c.improved()).collect();
    let first = report.stages.first().map_or("", |s| s.stage.as_str());
    let last = report.stages.last().map_or("", |s| s.stage.as_str());
    let _ = writeln!(
        h,
        "<h2>Tasks that improved</h2>\n<p>{} of {} tasks have a higher pass rate after {} than after {}.</p>",
        improved.len(),
        changes.len(),
        escape(last),
        escape(first)
    );
    h.push_str("<table><tr><th>task</th><th>split</th><th>first (%)</th><th>last (%)</th></tr>\n");
    for c in &changes {
        let mark = if c.improved() {
            " ▲"
        } else if c.last < c.first {
            " ▼"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}{mark}</td></tr>",
            escape(&c.task_id),
            c.split,
            pct(c.first),
            pct(c.last)
        );
    }
    h.push_str("</table>\n");
}

fn timings(h: &mut String, report: &Report) {
    h.push_str("<h2>Time per stage</h2>\n<table><tr><th>stage</th><th>seconds</th></tr>\n");
    for (name, s) in &report.timings {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=n>{s:.1}</td></tr>",
            escape(name)
        );
    }
    let total: f64 = report.timings.iter().map(|t| t.1).sum();
    let _ = writeln!(
        h,
        "<tr><th>total</th><th class=n>{total:.1}</th></tr></table>"
    );
}

/// One trajectory: its outcome, then each turn (the model's text, then what it saw), then the
/// final diff.
fn trajectory(h: &mut String, example: &Example) {
    let t = &example.trajectory;
    let _ = writeln!(
        h,
        "<h3>{}</h3>\n<p>{} #{}: {}, {} turns, reward {}.</p>",
        escape(&example.label),
        escape(&t.task_id),
        t.sample_index,
        outcome(t),
        t.turns.len(),
        t.reward
            .map_or_else(|| "none (not graded)".into(), |r| format!("{:.3}", r.total))
    );
    for (i, turn) in t.turns.iter().enumerate() {
        let flag = match turn.format_error {
            Some(e) => format!(" <span class=bad>format error: {e:?} (masked in RFT)</span>"),
            None => String::new(),
        };
        let _ = writeln!(
            h,
            "<div class=turn><b>Turn {} (model, {} tokens){flag}</b><pre>{}</pre></div>",
            i + 1,
            turn.assistant_ids.len(),
            escape(&turn.assistant_text)
        );
        if !turn.observation_text.is_empty() {
            let _ = writeln!(
                h,
                "<div class=\"turn obs\"><b>Observation</b><pre>{}</pre></div>",
                escape(&cut(&turn.observation_text, OBSERVATION_CHARS))
            );
        }
    }
    match t.final_patch.as_deref() {
        Some(patch) if !patch.trim().is_empty() => {
            let _ = writeln!(h, "<b>Final diff</b><pre>{}</pre>", diff_html(patch));
        }
        _ => h.push_str("<p><b>Final diff:</b> empty.</p>\n"),
    }
}

fn outcome(t: &Trajectory) -> String {
    let status = serde_json::to_value(t.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", t.status));
    let grade = if t.is_infra_failure() {
        "infrastructure failure".to_string()
    } else if t.resolved() {
        "resolved".to_string()
    } else {
        "not resolved".to_string()
    };
    format!("ended by {status}, {grade}")
}

/// `text` cut to `max` characters with a marker saying how much was left out.
fn cut(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!(
        "{kept}\n[... {} more characters not shown in this report]",
        n - max
    )
}

/// A unified diff with added, removed and hunk-header lines marked for colour.
fn diff_html(patch: &str) -> String {
    let mut out = String::new();
    for line in patch.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            None
        } else if line.starts_with('+') {
            Some("add")
        } else if line.starts_with('-') {
            Some("del")
        } else if line.starts_with("@@") {
            Some("hunk")
        } else {
            None
        };
        match class {
            Some(c) => {
                let _ = writeln!(out, "<span class={c}>{}</span>", escape(line));
            }
            None => {
                let _ = writeln!(out, "{}", escape(line));
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::stage;

    #[test]
    fn escapes_and_marks_diff_lines() {
        let d = diff_html("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a<b\n+a>b\n ctx");
        assert!(d.contains("<span class=del>-a&lt;b</span>"), "{d}");
        assert!(d.contains("<span class=add>+a&gt;b</span>"), "{d}");
        assert!(d.contains("<span class=hunk>@@ -1 +1 @@</span>"));
        assert!(d.contains("--- a/x\n"), "file headers are not colored: {d}");
    }

    #[test]
    fn long_observations_are_cut_visibly() {
        let s = "x".repeat(10);
        assert_eq!(cut(&s, 20), s);
        let c = cut(&s, 4);
        assert!(c.starts_with("xxxx\n[... 6 more characters"), "{c}");
    }

    #[test]
    fn page_holds_table_plots_and_notes() {
        let report = Report {
            title: "demo <1>".into(),
            provenance: "2026-12-02 on 2 cores".into(),
            notes: vec!["a tiny model".into()],
            stages: vec![stage("Base", 1), stage("RFT", 3)],
            curves: vec![],
            examples: vec![],
            timings: vec![("rft".into(), 2.5)],
            config: serde_json::json!({"seed": 0}),
        };
        let page = render_html(&report);
        assert!(page.contains("<title>demo &lt;1&gt;</title>"));
        assert!(page.contains("<td>RFT</td><td class=n>37.5 ± "), "{page}");
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("1 of 4 tasks have a higher pass rate after RFT than after Base"));
        assert!(page.contains("class=\"note\">a tiny model"));
        assert!(page.contains("&quot;seed&quot;: 0"));
    }
}
