//! Report options as a user gives them: the flags of `cuedeck report` and the query
//! parameters of `GET /v1/experiments/{key}/report`. Both edges fill the same
//! [`ReportParams`] (clap on the command line, serde on HTTP) and validate it with
//! [`ReportParams::options`], so one bad value is refused with one message everywhere.

#![warn(missing_docs)]

use serde::Deserialize;

use super::{Metric, ReportOptions, parse_date};
use crate::names;

/// Longest outcome window, in days.
const MAX_WINDOW_DAYS: u32 = 3650;

/// Report options as given, unparsed; absent ones take the [`ReportOptions`] defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, clap::Args)]
pub struct ReportParams {
    /// Outcome window after a unit's first exposure, in days (1 to 3650) [default: 90]
    #[arg(long)]
    pub window_days: Option<String>,
    /// Report on data up to the end of this day, YYYY-MM-DD (UTC) [default: today]
    #[arg(long)]
    pub as_of: Option<String>,
    /// Win definition: `closed`, won among closed deals (the default), or `matured`, won
    /// within the window among deals exposed at least the window ago.
    #[arg(long)]
    pub metric: Option<String>,
    /// N* of the always-valid (sequential) interval: the total units at which a decision
    /// is likely (a positive whole number) [default: 5000]
    #[arg(long)]
    pub seq_tuning: Option<String>,
}

/// A report parameter with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{param}`: {message}")]
pub struct ParamError {
    /// The parameter's name (`window_days`); on the command line, `--window-days`.
    pub param: &'static str,
    /// What was expected and what was given.
    pub message: String,
}

impl ParamError {
    /// The command-line flag of the parameter.
    pub fn flag(&self) -> String {
        format!("--{}", self.param.replace('_', "-"))
    }
}

impl ReportParams {
    /// The validated options; `today` is the default `as_of`.
    pub fn options(&self, today: time::Date) -> Result<ReportOptions, ParamError> {
        let bad = |param, message: String| ParamError { param, message };
        let mut opts = ReportOptions::new(match &self.as_of {
            Some(s) => parse_date(s)
                .ok_or_else(|| bad("as_of", format!("expected YYYY-MM-DD, got {s:?}")))?,
            None => today,
        });
        if let Some(s) = &self.window_days {
            opts.window_days = s
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=MAX_WINDOW_DAYS).contains(d))
                .ok_or_else(|| {
                    bad(
                        "window_days",
                        format!("expected a number of days from 1 to {MAX_WINDOW_DAYS}, got {s:?}"),
                    )
                })?;
        }
        if let Some(s) = &self.metric {
            opts.metric = names::parse_name::<Metric>(s).map_err(|e| {
                bad(
                    "metric",
                    format!("expected {}, got {s:?}", e.alternatives()),
                )
            })?;
        }
        if let Some(s) = &self.seq_tuning {
            opts.seq_tuning = s
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(f64::from)
                .ok_or_else(|| {
                    bad(
                        "seq_tuning",
                        format!("expected a positive whole number, got {s:?}"),
                    )
                })?;
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: time::Date = time::macros::date!(2026 - 11 - 22);

    fn params(pairs: &[(&str, &str)]) -> ReportParams {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        serde_urlencoded::from_str(&query).unwrap()
    }

    #[test]
    fn absent_parameters_take_the_defaults() {
        let opts = ReportParams::default().options(TODAY).unwrap();
        assert_eq!(opts, ReportOptions::new(TODAY));
    }

    #[test]
    fn every_parameter_is_read() {
        let opts = params(&[
            ("window_days", "30"),
            ("as_of", "2026-01-31"),
            ("metric", "matured"),
            ("seq_tuning", "800"),
        ])
        .options(TODAY)
        .unwrap();
        assert_eq!(
            (opts.window_days, opts.as_of, opts.metric, opts.seq_tuning),
            (
                30,
                time::macros::date!(2026 - 01 - 31),
                Metric::Matured,
                800.0
            )
        );
    }

    #[test]
    fn a_bad_value_names_its_parameter() {
        let cases = [
            (
                "as_of",
                "yesterday",
                "expected YYYY-MM-DD, got \"yesterday\"",
            ),
            (
                "window_days",
                "0",
                "expected a number of days from 1 to 3650, got \"0\"",
            ),
            (
                "window_days",
                "3651",
                "expected a number of days from 1 to 3650, got \"3651\"",
            ),
            (
                "metric",
                "won",
                "expected `closed` or `matured`, got \"won\"",
            ),
            (
                "seq_tuning",
                "0",
                "expected a positive whole number, got \"0\"",
            ),
            (
                "seq_tuning",
                "1.5",
                "expected a positive whole number, got \"1.5\"",
            ),
        ];
        for (param, value, message) in cases {
            let e = params(&[(param, value)]).options(TODAY).unwrap_err();
            assert_eq!((e.param, e.message.as_str()), (param, message));
            assert_eq!(e.to_string(), format!("`{param}`: {message}"));
        }
        let e = params(&[("window_days", "x")]).options(TODAY).unwrap_err();
        assert_eq!(e.flag(), "--window-days");
    }

    /// The command line fills the same type, so it is refused with the same message.
    #[test]
    fn the_command_line_gives_the_same_params() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            params: ReportParams,
        }
        let cli = <Cli as clap::Parser>::try_parse_from([
            "report",
            "--window-days",
            "0",
            "--metric",
            "matured",
        ])
        .unwrap();
        let http = params(&[("window_days", "0"), ("metric", "matured")]);
        assert_eq!(cli.params, http);
        assert_eq!(cli.params.options(TODAY), http.options(TODAY));
    }

    #[test]
    fn encoded_values_are_decoded() {
        let p: ReportParams = serde_urlencoded::from_str("as_of=2026%2D01%2D31&token=x").unwrap();
        assert_eq!(p.as_of.as_deref(), Some("2026-01-31"));
    }
}
