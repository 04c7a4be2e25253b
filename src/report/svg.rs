//! The lift forest plot as SVG, rendered here so the dashboard needs no chart library: one
//! row per treatment arm, the relative lift as a dot, its 95% interval as a line, the
//! always-valid (sequential) interval as a lighter band, and zero marked.

use std::fmt::Write;

use super::{Report, VariantReport, VsControl};

const WIDTH: f64 = 640.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 30.0;
const ROW: f64 = 34.0;
const TOP: f64 = 28.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The forest plot of every treatment arm's relative lift against the baseline.
pub fn forest(report: &Report) -> String {
    let arms: Vec<_> = report
        .variants
        .iter()
        .filter_map(|v| v.vs_control.as_ref().map(|vs| (v, vs)))
        .collect();
    let (lo, hi, pad) = axis(&arms);
    let plot = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + (v.clamp(lo, hi) - lo) / (hi - lo) * plot;
    let height = TOP + ROW * arms.len().max(1) as f64 + 30.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="Relative lift against {base} with 95% intervals" font-family="system-ui, sans-serif" font-size="12">"##,
        base = escape(&report.baseline)
    );
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="16" fill="#5b6576">Relative lift vs {} (dot), 95% CI (line), always-valid CI (band)</text>"##,
        escape(&report.baseline)
    );
    let zero = x(0.0);
    let bottom = height - 24.0;
    let _ = write!(
        s,
        r##"<line x1="{zero:.1}" y1="{TOP}" x2="{zero:.1}" y2="{bottom:.1}" stroke="#8a93a3" stroke-dasharray="4 3"/>"##
    );
    for (i, (v, vs)) in arms.iter().enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        arm_row(&mut s, &v.id, vs, y, &x, zero);
    }
    for tick in [lo + pad, 0.0, hi - pad] {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#5b6576">{:+.0}%</text>"##,
            x(tick),
            height - 8.0,
            tick * 100.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The axis range `(lo, hi, pad)`: every finite bound and lift, and zero, widened to
/// ±0.1 when they all lie within 0.02, with `pad` (5 %) added on each side.
fn axis(arms: &[(&VariantReport, &VsControl)]) -> (f64, f64, f64) {
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for (_, vs) in arms {
        for x in [vs.rel_ci, vs.seq_ci].into_iter().flatten().flatten() {
            if x.is_finite() {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
        if let Some(x) = vs.rel_lift.filter(|x| x.is_finite()) {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if hi - lo < 0.02 {
        lo -= 0.1;
        hi += 0.1;
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad, pad)
}

/// One arm's row at height `y`: its name, the always-valid band, the 95 % line and the
/// lift dot (or "no data yet" beside zero). `x` maps a lift to its x coordinate.
fn arm_row(s: &mut String, id: &str, vs: &VsControl, y: f64, x: &impl Fn(f64) -> f64, zero: f64) {
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1c2330">{}</text>"##,
        LEFT - 10.0,
        y + 4.0,
        escape(id)
    );
    if let Some([a, b]) = vs.seq_ci {
        let (a, b) = (x(a), x(b));
        let _ = write!(
            s,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="10" fill="#0b57d0" fill-opacity="0.15"/>"##,
            y - 5.0,
            (b - a).max(0.5)
        );
    }
    if let Some([a, b]) = vs.rel_ci {
        let _ = write!(
            s,
            r##"<line class="ci" x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#0b57d0" stroke-width="2"/>"##,
            x(a),
            x(b)
        );
    }
    match vs.rel_lift {
        Some(l) => {
            let color = if l >= 0.0 { "#1b6e2e" } else { "#b3261e" };
            let _ = write!(
                s,
                r##"<circle class="lift" cx="{:.1}" cy="{y:.1}" r="5" fill="{color}"><title>{}: {:+.1}%</title></circle>"##,
                x(l),
                escape(id),
                l * 100.0
            );
        }
        None => {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#5b6576">no data yet</text>"##,
                zero + 6.0,
                y + 4.0
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Unit;
    use crate::report::fixtures::{comparison, variant};
    use crate::report::{Metric, VariantReport, VsControl};

    fn vs(lift: Option<f64>, ci: Option<[f64; 2]>) -> VsControl {
        VsControl {
            rel_lift: lift,
            rel_ci: ci,
            seq_ci: ci.map(|[a, b]| [a * 2.0, b * 2.0]),
            ..comparison()
        }
    }

    fn report(variants: Vec<VariantReport>) -> Report {
        Report {
            experiment_key: "k".into(),
            card_id: "c".into(),
            unit: Unit::Deal,
            metric: Metric::Closed,
            window_days: 90,
            as_of: "2026-11-23".into(),
            srm_p: None,
            multiple_exposure_units: 0,
            variants,
            srm_warning: false,
            baseline: "control".into(),
            seq_tuning: 5000.0,
            revenue_cap: None,
            currency: None,
            unknown_variant_units: 0,
            closed_before_exposure: 0,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn one_row_per_treatment_arm_with_its_interval() {
        let r = report(vec![
            variant("control", None),
            variant("short", Some(vs(Some(0.2), Some([-0.1, 0.5])))),
            variant("<long>", Some(vs(Some(-0.05), Some([-0.3, 0.2])))),
        ]);
        let svg = forest(&r);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"lift\"").count(), 2);
        assert_eq!(svg.matches("class=\"ci\"").count(), 2);
        assert!(svg.contains("short: +20.0%"));
        assert!(svg.contains("&lt;long&gt;"), "names are escaped");
        assert!(!svg.contains("<long>"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn arms_without_data_say_so() {
        let r = report(vec![
            variant("control", None),
            variant("short", Some(vs(None, None))),
        ]);
        let svg = forest(&r);
        assert!(svg.contains("no data yet"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}

/// Cumulative units exposed (solid) and units with a closed outcome (dashed) per arm, by
/// day: whether the arms fill at the planned rates and how many outcomes are in so far.
pub fn timeline(
    def: &super::ExperimentDef,
    groups: &[crate::store::ExposureGroupRow],
    outcomes: &[crate::store::OutcomeRow],
) -> String {
    use std::collections::{BTreeMap, HashMap};

    // Each unit's arm and first day; units seen in several arms are left out, as in the report.
    let mut units: HashMap<&str, (Option<&str>, time::Date)> = HashMap::new();
    let mut mixed: Vec<&str> = Vec::new();
    for g in groups {
        let unit = match def.unit {
            crate::library::Unit::Deal => g.deal_id.as_deref(),
            crate::library::Unit::Rep => g.rep_id.as_deref(),
        };
        let Some(unit) = unit else { continue };
        let day = g.first_ts.datetime().date();
        match units.get_mut(unit) {
            Some((arm, first)) => {
                if *arm != g.variant.as_deref() {
                    mixed.push(unit);
                }
                if day < *first {
                    *first = day;
                }
            }
            None => {
                units.insert(unit, (g.variant.as_deref(), day));
            }
        }
    }
    for m in mixed {
        units.remove(m);
    }
    let arms: Vec<&str> = def.variants.iter().map(|v| v.id.as_str()).collect();
    // day -> per arm (exposed, closed) increments
    let mut days: BTreeMap<time::Date, Vec<(u64, u64)>> = BTreeMap::new();
    let mut bump = |day: time::Date, arm: &str, closed: bool| {
        if let Some(i) = arms.iter().position(|a| *a == arm) {
            let row = days.entry(day).or_insert_with(|| vec![(0, 0); arms.len()]);
            if closed {
                row[i].1 += 1;
            } else {
                row[i].0 += 1;
            }
        }
    };
    for (arm, day) in units.values() {
        if let Some(arm) = arm {
            bump(*day, arm, false);
        }
    }
    if def.unit == crate::library::Unit::Deal {
        for o in outcomes {
            let closed = matches!(o.outcome.as_str(), "won" | "lost");
            let arm = units.get(o.deal_id.as_str()).and_then(|(a, _)| *a);
            let day = o.closed_at.unwrap_or(o.received_at).datetime().date();
            if let (true, Some(arm)) = (closed, arm) {
                bump(day, arm, true);
            }
        }
    }

    let (w, h, left, top, bottom) = (640.0, 240.0, 50.0, 30.0, 30.0);
    let colors = [
        "#44474f", "#0b57d0", "#1b6e2e", "#a15c00", "#6a1b9a", "#b3261e",
    ];
    let mut totals = vec![(0u64, 0u64); arms.len()];
    let mut series: Vec<Vec<(u64, u64)>> = Vec::new();
    for row in days.values() {
        for (t, r) in totals.iter_mut().zip(row) {
            t.0 += r.0;
            t.1 += r.1;
        }
        series.push(totals.clone());
    }
    let max = totals
        .iter()
        .map(|t| t.0.max(t.1))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = series.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + (i as f64 / n) * (w - left - 20.0);
    let y = |v: u64| h - bottom - (v as f64 / max) * (h - top - bottom);

    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Cumulative units exposed and closed per arm by day" font-family="system-ui, sans-serif" font-size="12">"##
    );
    let _ = write!(
        s,
        r##"<text x="{left}" y="16" fill="#5b6576">Cumulative units exposed (solid) and closed (dashed), per arm, by day</text>"##
    );
    if series.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{left}" y="{:.0}" fill="#5b6576">no exposures yet</text></svg>"##,
            h / 2.0
        );
        return s;
    }
    for (a, arm) in arms.iter().enumerate() {
        let color = colors[a % colors.len()];
        for closed in [false, true] {
            let points: Vec<String> = series
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = if closed { t[a].1 } else { t[a].0 };
                    format!("{:.1},{:.1}", x(i), y(v))
                })
                .collect();
            let dash = if closed {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let class = if closed { "closed" } else { "exposed" };
            let _ = write!(
                s,
                r##"<polyline class="{class}" points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}><title>{}</title></polyline>"##,
                points.join(" "),
                escape(arm)
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="{color}">{} ({} exposed, {} closed)</text>"##,
            left + 130.0 * a as f64,
            h - 8.0,
            escape(arm),
            totals[a].0,
            totals[a].1
        );
    }
    let _ = write!(
        s,
        r##"<text x="4" y="{:.1}" fill="#5b6576">{}</text><text x="4" y="{:.1}" fill="#5b6576">0</text>"##,
        top + 4.0,
        max as u64,
        h - bottom
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod timeline_tests {
    use super::*;
    use crate::library::Unit;
    use crate::report::{ExperimentDef, VariantDef};
    use crate::store::{ExposureGroupRow, OutcomeRow};

    #[test]
    fn cumulative_lines_per_arm() {
        let def = ExperimentDef {
            key: "k".into(),
            card_id: "c".into(),
            unit: Unit::Deal,
            variants: vec![
                VariantDef {
                    id: "control".into(),
                    weight: 1.0,
                    control: true,
                },
                VariantDef {
                    id: "short".into(),
                    weight: 1.0,
                    control: false,
                },
            ],
        };
        let g = |deal: &str, arm: &str, ts: &str| ExposureGroupRow {
            deal_id: Some(deal.into()),
            rep_id: None,
            variant: Some(arm.into()),
            first_ts: ts.parse().unwrap(),
            exposures: 1,
        };
        let groups = vec![
            g("d1", "control", "2026-11-01T10:00:00.000Z"),
            g("d2", "short", "2026-11-01T11:00:00.000Z"),
            g("d3", "short", "2026-11-02T11:00:00.000Z"),
            // Seen in both arms: left out.
            g("d4", "short", "2026-11-02T11:00:00.000Z"),
            g("d4", "control", "2026-11-03T11:00:00.000Z"),
        ];
        let outcomes = vec![OutcomeRow {
            deal_id: "d2".into(),
            outcome: "won".into(),
            amount: None,
            currency: None,
            closed_at: Some("2026-11-05T00:00:00Z".parse().unwrap()),
            updated_at: None,
            received_at: "2026-11-05T00:00:00.000Z".parse().unwrap(),
        }];
        let svg = timeline(&def, &groups, &outcomes);
        assert_eq!(svg.matches("class=\"exposed\"").count(), 2);
        assert_eq!(svg.matches("class=\"closed\"").count(), 2);
        assert!(svg.contains("control (1 exposed, 0 closed)"), "{svg}");
        assert!(svg.contains("short (2 exposed, 1 closed)"), "{svg}");
        let empty = timeline(&def, &[], &[]);
        assert!(empty.contains("no exposures yet"));
    }
}
