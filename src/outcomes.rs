//! CRM outcome input: validation of the `POST /v1/outcomes` body and of
//! `cuedeck outcomes import` CSV rows, into [`OutcomeRow`]s for the store. Pure (no IO
//! besides reading the CSV from a caller's reader).
//!
//! Fields (documented for users in docs/http-api.md#post-v1outcomes): `deal_id`
//! (required, 1–128 bytes, no control characters), `outcome` (`won`, `lost` or `open`, any
//! case, stored lowercase), `amount` (optional, a non-negative **decimal number in major
//! currency units**: `12000.50` USD is twelve thousand dollars and fifty cents, not
//! cents), `currency` (optional, a 3-letter code, stored as given), `closed_at` (optional,
//! RFC 3339 with any offset or a plain `YYYY-MM-DD` date, stored as UTC
//! `2026-11-20T10:00:00.000Z`). Unknown fields are rejected so a misspelt field is not
//! silently dropped.
//!
//! `updated_at` (optional, same forms as `closed_at`) is when the CRM last changed the deal.
//! Timestamps must fall in the years 0000–9999 (UTC), which the store and the reports can
//! represent.
//!
//! Updates are history: every accepted outcome is appended, and the latest per deal is the
//! deal's current outcome: the one with the latest `updated_at` (its receive time when the
//! CRM sent none), so a late retry of an old update does not win and re-sending the same
//! update is harmless.

use std::fmt;

use serde_json::Value;

use crate::protocol::MAX_ID_LEN;
use crate::store::OutcomeRow;
use crate::timestamp::Timestamp;

/// The CSV columns, in the documented order.
pub const CSV_COLUMNS: [&str; 6] = [
    "deal_id",
    "outcome",
    "amount",
    "currency",
    "closed_at",
    "updated_at",
];

const FIELDS: [&str; 6] = CSV_COLUMNS;

/// A deal's state in the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    Won,
    Lost,
    Open,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        crate::names::name_of(&self)
    }

    /// A name in any case, surrounding spaces ignored.
    pub fn parse(s: &str) -> Result<OutcomeKind, crate::names::UnknownName> {
        crate::names::parse_name(&s.trim().to_ascii_lowercase())
    }
}

/// A validated outcome update.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub deal_id: String,
    pub outcome: OutcomeKind,
    /// Decimal, major currency units.
    pub amount: Option<f64>,
    pub currency: Option<String>,
    /// When the deal closed, if the CRM said.
    pub closed_at: Option<Timestamp>,
    /// When the CRM last changed the deal, if it said: orders the updates.
    pub updated_at: Option<Timestamp>,
}

impl Outcome {
    /// The store row, received at `received_at`.
    pub fn into_row(self, received_at: Timestamp) -> OutcomeRow {
        OutcomeRow {
            deal_id: self.deal_id,
            outcome: self.outcome.as_str().to_string(),
            amount: self.amount,
            currency: self.currency,
            closed_at: self.closed_at,
            updated_at: self.updated_at,
            received_at,
        }
    }
}

/// A problem with one field of one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field (or column) name; empty for a problem with the outcome as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
}

fn field_err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Why a request body was rejected: which element of an array (if it was one), which field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct BodyError {
    pub index: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl BodyError {
    fn describe(&self) -> String {
        let mut path = String::new();
        if let Some(i) = self.index {
            path.push_str(&format!("[{i}]"));
        }
        if let Some(f) = &self.field {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(f);
        }
        if path.is_empty() {
            self.message.clone()
        } else {
            format!("{path}: {}", self.message)
        }
    }
}

fn check_deal_id(s: &str) -> Result<String, FieldError> {
    if !crate::protocol::valid_id(s) {
        return Err(field_err(
            "deal_id",
            format!("must be 1 to {MAX_ID_LEN} bytes without control characters"),
        ));
    }
    Ok(s.to_string())
}

fn check_outcome(s: &str) -> Result<OutcomeKind, FieldError> {
    OutcomeKind::parse(s).map_err(|e| {
        field_err(
            "outcome",
            format!("expected {}, got {s:?}", e.alternatives()),
        )
    })
}

fn check_amount(x: f64) -> Result<f64, FieldError> {
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(field_err(
            "amount",
            format!("must be a non-negative decimal number (major currency units), got {x}"),
        ))
    }
}

fn check_currency(s: &str) -> Result<String, FieldError> {
    if s.len() == 3 && s.chars().all(|c| c.is_ascii_alphabetic()) {
        Ok(s.to_string())
    } else {
        Err(field_err(
            "currency",
            format!("expected a 3-letter currency code such as USD, got {s:?}"),
        ))
    }
}

/// A timestamp field (`closed_at`, `updated_at`). A time the parser accepts but that falls
/// outside the years 0000–9999 in UTC (`9999-12-31T23:59:59-23:59`) is refused: its text
/// form would not read back as the same instant.
fn check_time(field: &str, s: &str) -> Result<Timestamp, FieldError> {
    let t = Timestamp::parse(s).map_err(|_| {
        field_err(
            field,
            format!("expected an RFC 3339 timestamp or a YYYY-MM-DD date, got {s:?}"),
        )
    })?;
    if Timestamp::parse(&t.to_string()) != Ok(t) {
        return Err(field_err(
            field,
            format!("{s:?} is out of range: years 0000 to 9999 in UTC"),
        ));
    }
    Ok(t)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates one JSON outcome object.
pub fn from_json(value: &Value) -> Result<Outcome, FieldError> {
    let Value::Object(map) = value else {
        return Err(field_err(
            "",
            format!("expected an outcome object, got {}", json_kind(value)),
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(field_err(
            unknown,
            format!("unknown field, expected one of {}", FIELDS.join(", ")),
        ));
    }
    let string = |name: &str, required: bool| -> Result<Option<&str>, FieldError> {
        match map.get(name) {
            None | Some(Value::Null) if required => Err(field_err(name, "missing")),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(field_err(
                name,
                format!("expected a string, got {}", json_kind(other)),
            )),
        }
    };
    let deal_id = check_deal_id(string("deal_id", true)?.unwrap_or_default())?;
    let outcome = check_outcome(string("outcome", true)?.unwrap_or_default())?;
    let amount = match map.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(check_amount(n.as_f64().unwrap_or(f64::NAN))?),
        Some(other) => {
            return Err(field_err(
                "amount",
                format!(
                    "expected a number (decimal, major currency units), got {}",
                    json_kind(other)
                ),
            ));
        }
    };
    let currency = string("currency", false)?.map(check_currency).transpose()?;
    let closed_at = string("closed_at", false)?
        .map(|s| check_time("closed_at", s))
        .transpose()?;
    let updated_at = string("updated_at", false)?
        .map(|s| check_time("updated_at", s))
        .transpose()?;
    Ok(Outcome {
        deal_id,
        outcome,
        amount,
        currency,
        closed_at,
        updated_at,
    })
}

/// Largest number of outcomes in one request.
pub const MAX_OUTCOMES_PER_REQUEST: usize = 10_000;

/// Parses a `POST /v1/outcomes` body: one outcome object or an array of them. The first
/// problem found is reported with its array index and field.
pub fn parse_body(body: &[u8]) -> Result<Vec<Outcome>, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| BodyError {
        index: None,
        field: None,
        message: format!("body is not JSON: {e}"),
    })?;
    let at = |index: Option<usize>, e: FieldError| BodyError {
        index,
        field: (!e.field.is_empty()).then_some(e.field),
        message: e.message,
    };
    match &value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BodyError {
                    index: None,
                    field: None,
                    message: "empty array: send at least one outcome".into(),
                });
            }
            if items.len() > MAX_OUTCOMES_PER_REQUEST {
                return Err(BodyError {
                    index: None,
                    field: None,
                    message: format!(
                        "{} outcomes in one request, at most {MAX_OUTCOMES_PER_REQUEST}",
                        items.len()
                    ),
                });
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| from_json(v).map_err(|e| at(Some(i), e)))
                .collect()
        }
        other => from_json(other).map(|o| vec![o]).map_err(|e| at(None, e)),
    }
}

/// A CSV row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// The row's line in the file (the header is row 1).
    pub row: u64,
    pub error: FieldError,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}: {}", self.row, self.error)
    }
}

/// A parsed CSV file: the valid outcomes and every bad row.
#[derive(Debug, Default)]
pub struct CsvOutcomes {
    pub outcomes: Vec<Outcome>,
    pub bad: Vec<BadRow>,
}

/// Why a CSV file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the CSV: {0}")]
    Read(#[from] csv::Error),
    #[error("header: {0}")]
    Header(String),
}

/// Reads an outcomes CSV with a header row naming the columns `deal_id`, `outcome` (both
/// required), `amount`, `currency`, `closed_at`, `updated_at` (optional, any order). Empty cells are
/// absent values. Every bad row is collected with its row number (its line in the file).
pub fn read_csv(data: &[u8]) -> Result<CsvOutcomes, CsvError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    // The line a record starts on, from its byte offset: the reader's own positions count
    // the blank lines before a record as part of it.
    let line_of = |byte: u64| {
        let mut end = usize::try_from(byte).unwrap_or(data.len()).min(data.len());
        while end < data.len() && matches!(data[end], b'\n' | b'\r') {
            end += 1;
        }
        1 + data[..end].iter().filter(|&&b| b == b'\n').count() as u64
    };
    let headers = rdr.headers()?.clone();
    let mut index = [None; CSV_COLUMNS.len()];
    for (i, h) in headers.iter().enumerate() {
        let name = h.trim_start_matches('\u{feff}').to_ascii_lowercase();
        match CSV_COLUMNS.iter().position(|c| *c == name) {
            Some(c) if index[c].is_some() => {
                return Err(CsvError::Header(format!("column `{name}` appears twice")));
            }
            Some(c) => index[c] = Some(i),
            None => {
                return Err(CsvError::Header(format!(
                    "unknown column `{h}`, expected {}",
                    CSV_COLUMNS.join(",")
                )));
            }
        }
    }
    for required in [0, 1] {
        if index[required].is_none() {
            return Err(CsvError::Header(format!(
                "missing column `{}` (expected {})",
                CSV_COLUMNS[required],
                CSV_COLUMNS.join(",")
            )));
        }
    }
    let mut out = CsvOutcomes::default();
    for record in rdr.records() {
        let record = record?;
        let row = record.position().map_or(0, |p| line_of(p.byte()));
        if record.iter().all(str::is_empty) {
            continue; // a blank line
        }
        if record.len() != headers.len() {
            out.bad.push(BadRow {
                row,
                error: field_err(
                    "",
                    format!("{} cells, the header has {}", record.len(), headers.len()),
                ),
            });
            continue;
        }
        let cell = |c: usize| -> Option<&str> {
            index[c]
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
        };
        match from_cells([cell(0), cell(1), cell(2), cell(3), cell(4), cell(5)]) {
            Ok(o) => out.outcomes.push(o),
            Err(error) => out.bad.push(BadRow { row, error }),
        }
    }
    Ok(out)
}

/// Validates one CSV row's cells (`None` for an empty or absent cell).
fn from_cells(cells: [Option<&str>; CSV_COLUMNS.len()]) -> Result<Outcome, FieldError> {
    let [deal_id, outcome, amount, currency, closed_at, updated_at] = cells;
    let deal_id = check_deal_id(deal_id.ok_or_else(|| field_err("deal_id", "missing"))?)?;
    let outcome = check_outcome(outcome.ok_or_else(|| field_err("outcome", "missing"))?)?;
    let amount = amount
        .map(|a| {
            a.parse::<f64>().map_err(|_| {
                field_err(
                    "amount",
                    format!("expected a decimal number (major currency units), got {a:?}"),
                )
            })
        })
        .transpose()?
        .map(check_amount)
        .transpose()?;
    Ok(Outcome {
        deal_id,
        outcome,
        amount,
        currency: currency.map(check_currency).transpose()?,
        closed_at: closed_at.map(|s| check_time("closed_at", s)).transpose()?,
        updated_at: updated_at
            .map(|s| check_time("updated_at", s))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn one_object_or_an_array() {
        let one = parse_body(
            br#"{"deal_id":"d-1","outcome":"won","amount":12000.5,"currency":"USD","closed_at":"2026-11-20T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            one,
            vec![Outcome {
                deal_id: "d-1".into(),
                outcome: OutcomeKind::Won,
                amount: Some(12000.5),
                currency: Some("USD".into()),
                closed_at: Some(ts("2026-11-20T10:00:00.000Z")),
                updated_at: None,
            }]
        );
        let many =
            parse_body(br#"[{"deal_id":"d-1","outcome":"Lost"},{"deal_id":"d-2","outcome":"open","amount":null}]"#)
                .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].outcome, OutcomeKind::Lost);
        assert_eq!(many[1].amount, None);
    }

    #[test]
    fn timestamps_are_normalized_to_utc() {
        let o = parse_body(
            br#"{"deal_id":"d","outcome":"won","closed_at":"2026-11-20T12:00:00+02:00"}"#,
        )
        .unwrap();
        assert_eq!(o[0].closed_at, Some(ts("2026-11-20T10:00:00.000Z")));
        let o = parse_body(br#"{"deal_id":"d","outcome":"won","closed_at":"2026-11-20"}"#).unwrap();
        assert_eq!(o[0].closed_at, Some(ts("2026-11-20T00:00:00.000Z")));
    }

    #[test]
    fn bad_input_names_the_field_and_the_index() {
        let err = |body: &str| parse_body(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(err(r#"{"outcome":"won"}"#), "deal_id: missing");
        assert_eq!(
            err(r#"[{"deal_id":"a","outcome":"won"},{"deal_id":"b","outcome":"maybe"}]"#),
            "[1].outcome: expected `won`, `lost` or `open`, got \"maybe\""
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","amount":"12k"}"#)
                .starts_with("amount: expected a number")
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","amount":-5}"#)
                .starts_with("amount: must be a non-negative")
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","currency":"dollars"}"#).starts_with("currency:")
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","closed_at":"yesterday"}"#)
                .starts_with("closed_at:")
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","ammount":5}"#)
                .starts_with("ammount: unknown field")
        );
        assert!(err(r#"{"deal_id":"","outcome":"won"}"#).starts_with("deal_id: must be"));
        assert!(err(r#"{"deal_id":7,"outcome":"won"}"#).starts_with("deal_id: expected a string"));
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","closed_at":"9999-12-31T23:59:59-23:59"}"#)
                .starts_with("closed_at: \"9999-12-31T23:59:59-23:59\" is out of range")
        );
        assert!(
            err(r#"{"deal_id":"a","outcome":"won","updated_at":"soon"}"#)
                .starts_with("updated_at:")
        );
        assert!(err("[]").starts_with("empty array"));
        assert!(err("[1]").starts_with("[0]: expected an outcome object"));
        assert!(err("not json").starts_with("body is not JSON"));
    }

    #[test]
    fn csv_rows_are_checked_with_their_row_numbers() {
        let csv = "deal_id,outcome,amount,currency,closed_at\n\
                   d-1,won,12000.50,USD,2026-11-20\n\
                   d-2,lost,,,\n\
                   d-3,maybe,1,USD,\n\
                   \n\
                   d-4,won,12k,USD,2026-11-20\n\
                   ,open,,,\n\
                   \"d-5\",open,,,2026-11-21T09:00:00Z\n";
        let r = read_csv(csv.as_bytes()).unwrap();
        let ids: Vec<&str> = r.outcomes.iter().map(|o| o.deal_id.as_str()).collect();
        assert_eq!(ids, ["d-1", "d-2", "d-5"]);
        assert_eq!(r.outcomes[0].amount, Some(12000.5));
        assert_eq!(r.outcomes[1].amount, None);
        let bad: Vec<String> = r.bad.iter().map(ToString::to_string).collect();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].starts_with("row 4: `outcome`"), "{bad:?}");
        assert!(bad[1].starts_with("row 6: `amount`"), "{bad:?}");
        assert!(bad[2].starts_with("row 7: `deal_id`: missing"), "{bad:?}");
    }

    #[test]
    fn csv_columns_may_come_in_any_order_but_must_be_known() {
        let r = read_csv("outcome,deal_id\nwon,d-1\n".as_bytes()).unwrap();
        assert_eq!(r.outcomes[0].deal_id, "d-1");
        let e = read_csv("deal_id,result\nd-1,won\n".as_bytes()).unwrap_err();
        assert!(e.to_string().contains("unknown column `result`"), "{e}");
        let e = read_csv("deal_id,amount\nd-1,5\n".as_bytes()).unwrap_err();
        assert!(e.to_string().contains("missing column `outcome`"), "{e}");
    }
}
