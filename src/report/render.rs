//! Report output: an aligned plain-text table for people, JSON (the names of
//! docs/statistics.md#json-fields) and CSV (one row per variant, every experiment in one
//! file) for tools.

use std::fmt::Write as _;

use super::{Report, VariantReport, Verdict, VsControl};

/// The report as one line of JSON. Uncomputable figures are `null` (serde never writes
/// NaN: the report holds none).
pub fn json(report: &Report) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `25.1%`.
fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `+10.2%`.
fn signed_pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn pct_ci(ci: Option<[f64; 2]>, signed: bool) -> String {
    let f = if signed { signed_pct } else { pct };
    ci.map_or_else(|| "—".into(), |[a, b]| format!("[{}, {}]", f(a), f(b)))
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "—".into(),
        Some(p) if p < 0.0001 => "<0.0001".into(),
        Some(p) => format!("{p:.4}"),
    }
}

/// `12,345` .
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `3,051.20`.
fn money(x: f64) -> String {
    let cents = (x.abs() * 100.0).round() as u64;
    let sign = if x < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", thousands(cents / 100), cents % 100)
}

/// The table's words for a verdict.
fn verdict_text(vs: &VsControl) -> String {
    match vs.verdict {
        Verdict::NotEnoughData => match vs.needed_units_per_arm {
            Some(n) => format!("not enough data (~{} more per arm)", thousands(n)),
            None => "not enough data".into(),
        },
        Verdict::SrmWarning => "check SRM first".into(),
        Verdict::Better => "better".into(),
        Verdict::Worse => "worse".into(),
        Verdict::LeaningBetter => "better at a planned readout only".into(),
        Verdict::LeaningWorse => "worse at a planned readout only".into(),
        Verdict::NoClearDifference => "no clear difference".into(),
    }
}

/// Left- and right-aligned columns, two spaces apart.
fn aligned(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = width[c].saturating_sub(cell.chars().count());
            if right.get(c).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The report as an aligned table with a header and any warnings.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {}  (card {}, unit {}, metric {}, window {} days, as of {})",
        r.experiment_key,
        r.card_id,
        r.unit_str(),
        r.metric.as_str(),
        r.window_days,
        r.as_of
    );
    let srm = match r.srm_p {
        Some(p) if r.srm_warning => format!("SRM p {p:.2e} MISMATCH"),
        Some(p) => format!("SRM p {p:.4} ok"),
        None => "SRM p —".into(),
    };
    let cap = match (r.revenue_cap, &r.currency) {
        (Some(c), Some(cur)) => format!("revenue capped at {} {cur}", money(c)),
        (Some(c), None) => format!("revenue capped at {}", money(c)),
        _ => "revenue not capped".into(),
    };
    let _ = writeln!(
        out,
        "{srm}; multiple-exposure units {}; {cap}; sequential N* {}",
        r.multiple_exposure_units, r.seq_tuning
    );
    out.push('\n');
    let best = r.variants.iter().any(|v| v.prob_best.is_some());
    let mut header: Vec<String> = [
        "variant",
        "units",
        "closed",
        "won",
        "win rate",
        "95% CI",
        "rev/unit",
        "lift",
        "lift 95% CI",
        "p",
        "p adj",
        "P(beat ctrl)",
        "always-valid CI",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if best {
        header.push("P(best)".into());
    }
    header.push("verdict".into());
    let mut rows = vec![header];
    for v in &r.variants {
        rows.push(variant_row(v, r, best));
    }
    let mut right = vec![
        false, true, true, true, true, false, true, true, false, true, true, true, false,
    ];
    if best {
        right.push(true);
    }
    right.push(false);
    out.push_str(&aligned(&rows, &right));
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

fn variant_row(v: &VariantReport, r: &Report, best: bool) -> Vec<String> {
    let dash = || "—".to_string();
    let name = if v.id == r.baseline {
        format!("{} (baseline)", v.id)
    } else {
        v.id.clone()
    };
    let mut row = vec![
        name,
        thousands(v.units),
        thousands(v.closed),
        thousands(v.won),
        v.win_rate.map_or_else(dash, pct),
        pct_ci(v.win_rate_ci, false),
        v.revenue_per_unit.map_or_else(dash, money),
    ];
    match &v.vs_control {
        Some(vs) => {
            row.push(vs.rel_lift.map_or_else(dash, signed_pct));
            row.push(pct_ci(vs.rel_ci, true));
            row.push(p_value(vs.p_value));
            row.push(p_value(vs.p_adjusted));
            row.push(vs.chance_to_win.map_or_else(dash, pct));
            row.push(pct_ci(vs.seq_ci, true));
        }
        None => row.extend(std::iter::repeat_n(String::new(), 6)),
    }
    if best {
        row.push(v.prob_best.map_or_else(dash, pct));
    }
    row.push(v.vs_control.as_ref().map(verdict_text).unwrap_or_default());
    row
}

/// CSV columns, one row per variant.
pub const CSV_HEADER: [&str; 44] = [
    "experiment_key",
    "card_id",
    "unit",
    "metric",
    "window_days",
    "as_of",
    "srm_p",
    "srm_warning",
    "multiple_exposure_units",
    "variant",
    "weight",
    "control",
    "baseline",
    "units",
    "exposures",
    "deals",
    "matured",
    "closed",
    "won",
    "n",
    "win_rate",
    "win_rate_ci_low",
    "win_rate_ci_high",
    "revenue_per_unit",
    "revenue_sd",
    "abs_diff",
    "abs_ci_low",
    "abs_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "p_adjusted",
    "chance_to_win",
    "risk_control",
    "risk_variant",
    "seq_ci_low",
    "seq_ci_high",
    "prob_best",
    "enough_data",
    "needed_units_per_arm",
    "verdict",
    "revenue_rel_lift",
    "revenue_p_value",
];

fn num(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

fn lo(x: Option<[f64; 2]>) -> String {
    num(x.map(|c| c[0]))
}

fn hi(x: Option<[f64; 2]>) -> String {
    num(x.map(|c| c[1]))
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading
/// `'`, so a card or variant id like `=HYPERLINK(…)` stays text; numbers (`-0.05`) stay
/// numbers.
fn cell(text: String) -> String {
    let formula = text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err();
    if formula { format!("'{text}") } else { text }
}

/// The reports as CSV with a header row; empty cells for figures that cannot be computed.
pub fn csv(reports: &[Report]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for r in reports {
        for v in &r.variants {
            let vs = v.vs_control.as_ref();
            let f = |get: fn(&VsControl) -> Option<f64>| num(vs.and_then(get));
            let ci = |get: fn(&VsControl) -> Option<[f64; 2]>| vs.and_then(get);
            w.write_record(
                [
                    r.experiment_key.clone(),
                    r.card_id.clone(),
                    r.unit_str().to_string(),
                    r.metric.as_str().to_string(),
                    r.window_days.to_string(),
                    r.as_of.clone(),
                    num(r.srm_p),
                    r.srm_warning.to_string(),
                    r.multiple_exposure_units.to_string(),
                    v.id.clone(),
                    v.weight.to_string(),
                    v.control.to_string(),
                    (v.id == r.baseline).to_string(),
                    v.units.to_string(),
                    v.exposures.to_string(),
                    v.deals.to_string(),
                    v.matured.to_string(),
                    v.closed.to_string(),
                    v.won.to_string(),
                    v.n.to_string(),
                    num(v.win_rate),
                    lo(v.win_rate_ci),
                    hi(v.win_rate_ci),
                    num(v.revenue_per_unit),
                    num(v.revenue_sd),
                    f(|x| x.abs_diff),
                    lo(ci(|x| x.abs_ci)),
                    hi(ci(|x| x.abs_ci)),
                    f(|x| x.rel_lift),
                    lo(ci(|x| x.rel_ci)),
                    hi(ci(|x| x.rel_ci)),
                    f(|x| x.p_value),
                    f(|x| x.p_adjusted),
                    f(|x| x.chance_to_win),
                    num(vs.and_then(|x| x.risk).map(|r| r[0])),
                    num(vs.and_then(|x| x.risk).map(|r| r[1])),
                    lo(ci(|x| x.seq_ci)),
                    hi(ci(|x| x.seq_ci)),
                    num(v.prob_best),
                    vs.map(|x| x.enough_data.to_string()).unwrap_or_default(),
                    vs.and_then(|x| x.needed_units_per_arm)
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                    vs.map(|x| x.verdict.to_string()).unwrap_or_default(),
                    f(|x| x.revenue_rel_lift),
                    f(|x| x.revenue_p_value),
                ]
                .map(cell),
            )?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl Report {
    fn unit_str(&self) -> &'static str {
        crate::names::name_of(&self.unit)
    }
}
