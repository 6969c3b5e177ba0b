//! The report's SVG plots: Pass@1 per stage, and the DAPO curves (reward and resolved rate,
//! turns, sampler/trainer KL) over the iterations of both stages on one x axis.

use swerl_rl::metrics as m;
use swerl_train::plot::{line_chart, Series};

use crate::{Curve, Report};

/// One plot: a file name (`*.svg`), its title, and the SVG text.
#[derive(Debug, Clone)]
pub struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// Every plot of the report, in display order.
pub fn plots(report: &Report) -> Vec<Plot> {
    let mut out = vec![pass_at_1_per_stage(report)];
    let curves = [
        (
            "reward.svg",
            "DAPO: mean reward and resolved rate per iteration",
            vec![
                (m::REWARD_MEAN, "reward"),
                (m::RESOLVED_RATE, "resolved rate"),
            ],
        ),
        (
            "turns.svg",
            "DAPO: mean turns per trajectory",
            vec![(m::TURNS_MEAN, "turns")],
        ),
        (
            "kl.svg",
            "DAPO: KL(sampler || trainer) per action token",
            vec![(m::KL_SAMPLER_TRAINER, "sampler/trainer KL")],
        ),
    ];
    for (file, title, metrics) in curves {
        let series: Vec<Series> = metrics
            .iter()
            .map(|(key, name)| Series {
                name: (*name).to_string(),
                points: iteration_points(&report.curves, key),
            })
            .collect();
        out.push(Plot {
            file: file.into(),
            title: title.into(),
            svg: line_chart(title, "DAPO iteration (stage 1, then stage 2)", &series),
        });
    }
    out
}

/// Pass@1 of each split against the stage index (0 = the first row of Table 1).
fn pass_at_1_per_stage(report: &Report) -> Plot {
    let split = |name: &str, pick: fn(&crate::StageResult) -> Option<f64>| Series {
        name: name.into(),
        points: report
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| pick(s).map(|v| (i as f64, v)))
            .collect(),
    };
    let series = [
        split("train", |s| s.train.as_ref().map(|e| e.pass_at_1)),
        split("held-out", |s| s.heldout.as_ref().map(|e| e.pass_at_1)),
    ];
    let names: Vec<String> = report
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{i} = {}", s.stage))
        .collect();
    let title = "Pass@1 per stage";
    Plot {
        file: "pass_at_1.svg".into(),
        title: title.into(),
        svg: line_chart(title, &format!("stage ({})", names.join(", ")), &series),
    }
}

/// `(global iteration, value)` of `key` over the stages' rows, numbered 1, 2, ... across
/// stages so stage 2 continues where stage 1 ended.
fn iteration_points(curves: &[Curve], key: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut x = 0.0;
    for curve in curves {
        for row in &curve.rows {
            x += 1.0;
            if let Some(&v) = row.values.get(key) {
                out.push((x, v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::stage;
    use swerl_train::metrics_log::MetricsRow;

    fn row(step: u64, reward: f64) -> MetricsRow {
        let mut r = MetricsRow::new(step);
        r.set(m::REWARD_MEAN, reward);
        r
    }

    #[test]
    fn stage_two_continues_the_iteration_axis() {
        let curves = vec![
            Curve {
                stage: "1".into(),
                rows: vec![row(1, 0.1), row(2, 0.2)],
            },
            Curve {
                stage: "2".into(),
                rows: vec![row(1, 0.5)],
            },
        ];
        assert_eq!(
            iteration_points(&curves, m::REWARD_MEAN),
            vec![(1.0, 0.1), (2.0, 0.2), (3.0, 0.5)]
        );
        assert!(iteration_points(&curves, m::TURNS_MEAN).is_empty());
    }

    #[test]
    fn every_plot_is_an_svg() {
        let report = Report {
            title: "t".into(),
            provenance: String::new(),
            notes: vec![],
            stages: vec![stage("Base", 1), stage("RFT", 2)],
            curves: vec![],
            examples: vec![],
            timings: vec![],
            config: serde_json::Value::Null,
        };
        let plots = plots(&report);
        assert_eq!(plots.len(), 4);
        for p in &plots {
            assert!(
                p.svg.starts_with("<svg") && p.svg.trim_end().ends_with("</svg>"),
                "{}",
                p.file
            );
        }
        assert!(plots[0].svg.contains("0 = Base, 1 = RFT"));
    }
}
