//! `kubectl aigov compare`: two periods side by side, by model (or, with `--by KEY`, by the
//! values of a request-metadata key): spend in each, the absolute and percentage change, and
//! the calls behind them.

use std::collections::BTreeMap;

use aigov_api::Usd;
use serde::Serialize;

use crate::range::TimeRange;
use crate::records::{ByKey, CallRecord, Scope, distinct_calls};
use crate::table::{self, Style, TableBuilder};

/// What a row compares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ChangeOf {
    /// A model (`TOTAL` for the sum row).
    Model {
        /// The model.
        model: String,
    },
    /// A value of the `--by` key (`(none)`: calls without it; `TOTAL` for the sum row).
    Value {
        /// The value.
        value: String,
    },
}

impl ChangeOf {
    /// The model or the value.
    pub fn name(&self) -> &str {
        match self {
            ChangeOf::Model { model } => model,
            ChangeOf::Value { value } => value,
        }
    }
}

/// One model's (or value's) spend in both periods.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelChange {
    /// The model or the value.
    #[serde(flatten)]
    pub of: ChangeOf,
    /// Spend in the first period.
    pub before: Usd,
    /// Spend in the second period.
    pub after: Usd,
    /// `after - before` (negative when spend fell).
    pub change: String,
    /// The change in percent of `before`; None when `before` is zero.
    pub change_percent: Option<String>,
    /// Calls in the first period.
    pub before_requests: u64,
    /// Calls in the second period.
    pub after_requests: u64,
}

/// The rows of a comparison: per model (`models`), or per value of a key (`by`, `values`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Rows {
    /// One row per model.
    Models {
        /// The rows.
        models: Vec<ModelChange>,
    },
    /// One row per value of the key.
    Values {
        /// The key.
        by: String,
        /// The rows.
        values: Vec<ModelChange>,
    },
}

/// The comparison: the two ranges and a row per model (or value), dearest (in either period)
/// first, then the total.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The first period.
    pub before: TimeRange,
    /// The second period.
    pub after: TimeRange,
    /// The rows.
    #[serde(flatten)]
    pub rows: Rows,
    /// The sum of every row.
    pub total: ModelChange,
}

impl Comparison {
    /// The rows, whatever they are of.
    pub fn rows(&self) -> &[ModelChange] {
        match &self.rows {
            Rows::Models { models } => models,
            Rows::Values { values, .. } => values,
        }
    }
}

/// Compares the records in `scope` over two ranges by model (each call counted once).
pub fn compare(
    records: &[CallRecord],
    scope: &Scope,
    before: TimeRange,
    after: TimeRange,
) -> Comparison {
    let (rows, total) = compare_of(records, scope, (&before, &after), |r| ChangeOf::Model {
        model: r.model.clone(),
    });
    Comparison {
        before,
        after,
        rows: Rows::Models { models: rows },
        total: total(ChangeOf::Model {
            model: "TOTAL".into(),
        }),
    }
}

/// Compares the records in `scope` over two ranges by the values of `by` (each call once).
pub fn compare_by(
    records: &[CallRecord],
    scope: &Scope,
    (before, after): (TimeRange, TimeRange),
    by: &ByKey,
) -> Comparison {
    let (rows, total) = compare_of(records, scope, (&before, &after), |r| ChangeOf::Value {
        value: by.value_of(r).to_owned(),
    });
    Comparison {
        before,
        after,
        rows: Rows::Values {
            by: by.key().to_owned(),
            values: rows,
        },
        total: total(ChangeOf::Value {
            value: "TOTAL".into(),
        }),
    }
}

/// The rows of what `of` names each call by, dearest first, and the total row to be named.
fn compare_of(
    records: &[CallRecord],
    scope: &Scope,
    (before, after): (&TimeRange, &TimeRange),
    of: impl Fn(&CallRecord) -> ChangeOf,
) -> (Vec<ModelChange>, impl FnOnce(ChangeOf) -> ModelChange) {
    let mut sums: BTreeMap<String, (ChangeOf, [(Usd, u64); 2])> = BTreeMap::new();
    for r in distinct_calls(records, scope) {
        let side = if before.contains(r.timestamp) {
            0
        } else if after.contains(r.timestamp) {
            1
        } else {
            continue;
        };
        let what = of(r);
        let (_, entry) = sums
            .entry(what.name().to_owned())
            .or_insert_with(|| (what, [(Usd::ZERO, 0); 2]));
        entry[side].0 += r.cost_usd;
        entry[side].1 += 1;
    }
    let row = |of: ChangeOf, [(b, br), (a, ar)]: [(Usd, u64); 2]| ModelChange {
        of,
        before: b,
        after: a,
        change: signed(b, a),
        change_percent: table::percent_change(b, a).map(|p| p.to_string()),
        before_requests: br,
        after_requests: ar,
    };
    let mut total = [(Usd::ZERO, 0), (Usd::ZERO, 0)];
    for (_, sides) in sums.values() {
        for (t, s) in total.iter_mut().zip(sides) {
            t.0 += s.0;
            t.1 += s.1;
        }
    }
    let mut rows: Vec<ModelChange> = sums.into_values().map(|(of, s)| row(of, s)).collect();
    rows.sort_by(|x, y| {
        x.before
            .max(x.after)
            .cmp(&y.before.max(y.after))
            .reverse()
            .then(x.of.name().cmp(y.of.name()))
    });
    (rows, move |of| row(of, total))
}

/// An exact signed amount: `"1.25"`, `"-0.40"`.
fn signed(before: Usd, after: Usd) -> String {
    if before > after {
        format!("-{}", (before - after).to_api_string())
    } else {
        (after - before).to_api_string()
    }
}

/// The table a person reads.
pub fn render(c: &Comparison, style: Style) -> String {
    let mut out = format!("A: {}\nB: {}\n", c.before, c.after);
    if c.rows().is_empty() {
        out.push_str("No Bedrock calls in either period.\n");
        return out;
    }
    let what = match &c.rows {
        Rows::Models { .. } => "MODEL".to_owned(),
        Rows::Values { by, .. } => by.to_uppercase(),
    };
    let mut t = TableBuilder::new(
        style,
        &[
            &what,
            "A SPENT",
            "B SPENT",
            "CHANGE",
            "CHANGE %",
            "A REQUESTS",
            "B REQUESTS",
        ],
    )
    .numeric(&[1, 2, 3, 4, 5, 6]);
    for m in c.rows().iter().chain(std::iter::once(&c.total)) {
        t.cells(vec![
            m.of.name().into(),
            table::money(m.before).into(),
            table::money(m.after).into(),
            table::money_change(m.before, m.after).into(),
            table::change_cell(
                table::percent_text(m.before, m.after),
                table::percent_change(m.before, m.after),
                style,
            ),
            table::count(m.before_requests).into(),
            table::count(m.after_requests).into(),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::tests::record;

    #[test]
    fn two_periods_compare_by_model_with_absolute_and_percentage_change() {
        let now = jiff::Timestamp::now();
        let a = TimeRange::parse("2026-11-23..2026-11-24", now, "--a").unwrap();
        let b = TimeRange::parse("2026-11-24..2026-11-25", now, "--b").unwrap();
        let records = [
            record(
                "2026-11-23T10:00:00Z",
                "t",
                "d",
                "chat",
                "sonnet",
                "4.00",
                "r1",
            ),
            record(
                "2026-11-24T10:00:00Z",
                "t",
                "d",
                "chat",
                "sonnet",
                "1.00",
                "r2",
            ),
            record(
                "2026-11-24T11:00:00Z",
                "t",
                "d",
                "chat",
                "haiku",
                "0.50",
                "r3",
            ),
            record(
                "2026-11-24T11:00:00Z",
                "t",
                "m",
                "chat",
                "haiku",
                "0.50",
                "r3",
            ),
            record(
                "2026-11-25T00:00:00Z",
                "t",
                "d",
                "chat",
                "haiku",
                "7.00",
                "later",
            ),
        ];
        let c = compare(&records, &Scope::default(), a, b);
        let rows = c.rows();
        assert_eq!(rows[0].of.name(), "sonnet");
        assert_eq!(
            (rows[0].change.as_str(), rows[0].change_percent.as_deref()),
            ("-3.00", Some("-75.0"))
        );
        assert_eq!(
            (rows[1].of.name(), rows[1].change_percent.as_deref()),
            ("haiku", None)
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["models"][0]["model"], "sonnet");
        assert_eq!(json["total"]["model"], "TOTAL");
        assert_eq!(c.total.after, Usd::parse("1.50").unwrap());
        assert_eq!((c.total.before_requests, c.total.after_requests), (1, 2));
        let text = render(&c, Style::plain());
        assert!(
            text.lines()
                .any(|l| l.starts_with("sonnet") && l.contains("-$3.00") && l.contains("-75.0%")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("haiku") && l.contains("new")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("TOTAL") && l.contains("-62.5%")),
            "{text}"
        );
    }
}

#[cfg(test)]
mod by_tests {
    use super::*;
    use crate::records::tests::{record, tagged};

    #[test]
    fn two_periods_compare_by_the_values_of_a_key() {
        let now = jiff::Timestamp::now();
        let a = TimeRange::parse("2026-11-23..2026-11-24", now, "--a").unwrap();
        let b = TimeRange::parse("2026-11-24..2026-11-25", now, "--b").unwrap();
        let records = [
            tagged(
                record("2026-11-23T10:00:00Z", "t", "d", "chat", "m", "2.00", "r1"),
                &[("feature", "search")],
            ),
            tagged(
                record("2026-11-24T10:00:00Z", "t", "d", "chat", "m", "3.00", "r2"),
                &[("feature", "search")],
            ),
            tagged(
                record("2026-11-24T10:00:00Z", "t", "d", "chat", "m", "1.00", "r3"),
                &[("feature", "chat")],
            ),
            record("2026-11-23T11:00:00Z", "t", "d", "chat", "m", "0.50", "r4"),
        ];
        let by = ByKey::parse("feature").unwrap();
        let c = compare_by(&records, &Scope::default(), (a, b), &by);
        let rows: Vec<_> = c
            .rows()
            .iter()
            .map(|r| (r.of.name(), r.change.as_str()))
            .collect();
        assert_eq!(
            rows,
            [("search", "1.00"), ("chat", "1.00"), ("(none)", "-0.50")]
        );
        assert_eq!(
            (c.total.before, c.total.after),
            (Usd::parse("2.50").unwrap(), Usd::parse("4.00").unwrap())
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            (json["by"].as_str(), json["values"][0]["value"].as_str()),
            (Some("feature"), Some("search"))
        );
        assert!(json.get("models").is_none());
        assert!(render(&c, Style::plain()).contains("FEATURE"));
    }
}
