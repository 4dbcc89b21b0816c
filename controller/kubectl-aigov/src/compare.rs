//! `kubectl aigov compare`: two periods side by side, by model: spend in each, the absolute
//! and percentage change, and the calls behind them.

use std::collections::BTreeMap;

use aigov_api::Usd;
use serde::Serialize;

use crate::range::TimeRange;
use crate::records::{CallRecord, Scope, distinct_calls};
use crate::table::{self, Style, TableBuilder};

/// One model's spend in both periods.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelChange {
    /// The model (`TOTAL` for the sum row).
    pub model: String,
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

/// The comparison: the two ranges and a row per model, dearest (in either period) first, then
/// the total.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The first period.
    pub before: TimeRange,
    /// The second period.
    pub after: TimeRange,
    /// One row per model.
    pub models: Vec<ModelChange>,
    /// The sum of every model.
    pub total: ModelChange,
}

/// Compares the records in `scope` over two ranges (each call counted once).
pub fn compare(
    records: &[CallRecord],
    scope: &Scope,
    before: TimeRange,
    after: TimeRange,
) -> Comparison {
    let mut sums: BTreeMap<String, [(Usd, u64); 2]> = BTreeMap::new();
    for r in distinct_calls(records, scope) {
        let side = if before.contains(r.timestamp) {
            0
        } else if after.contains(r.timestamp) {
            1
        } else {
            continue;
        };
        let entry = sums.entry(r.model.clone()).or_insert([(Usd::ZERO, 0); 2]);
        entry[side].0 += r.cost_usd;
        entry[side].1 += 1;
    }
    let row = |model: String, [(b, br), (a, ar)]: [(Usd, u64); 2]| ModelChange {
        model,
        before: b,
        after: a,
        change: signed(b, a),
        change_percent: table::percent_change(b, a).map(|p| p.to_string()),
        before_requests: br,
        after_requests: ar,
    };
    let mut total = [(Usd::ZERO, 0), (Usd::ZERO, 0)];
    for sides in sums.values() {
        for (t, s) in total.iter_mut().zip(sides) {
            t.0 += s.0;
            t.1 += s.1;
        }
    }
    let mut models: Vec<ModelChange> = sums.into_iter().map(|(m, s)| row(m, s)).collect();
    models.sort_by(|x, y| {
        x.before
            .max(x.after)
            .cmp(&y.before.max(y.after))
            .reverse()
            .then(x.model.cmp(&y.model))
    });
    Comparison {
        before,
        after,
        models,
        total: row("TOTAL".to_owned(), total),
    }
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
    if c.models.is_empty() {
        out.push_str("No Bedrock calls in either period.\n");
        return out;
    }
    let mut t = TableBuilder::new(
        style,
        &[
            "MODEL",
            "A SPENT",
            "B SPENT",
            "CHANGE",
            "CHANGE %",
            "A REQUESTS",
            "B REQUESTS",
        ],
    )
    .numeric(&[1, 2, 3, 4, 5, 6]);
    for m in c.models.iter().chain(std::iter::once(&c.total)) {
        t.cells(vec![
            m.model.as_str().into(),
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
        assert_eq!(c.models[0].model, "sonnet");
        assert_eq!(
            (
                c.models[0].change.as_str(),
                c.models[0].change_percent.as_deref()
            ),
            ("-3.00", Some("-75.0"))
        );
        assert_eq!(
            (
                c.models[1].model.as_str(),
                c.models[1].change_percent.as_deref()
            ),
            ("haiku", None)
        );
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
