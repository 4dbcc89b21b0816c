//! `kubectl aigov report`: per namespace and budget (and, with `-A`, per ClusterAIBudget,
//! the namespaces it covers and their budgets beneath it), where spend stands (spent, limit,
//! forecast, throttles), who and what spent it (top models and workloads), and how it compares
//! with the last period. Everything comes from AIBudget status, so it matches `kubectl get aib`.
//!
//! `--by KEY` breaks each budget's spend this period down by the values of a request-metadata
//! key instead ([`by_value`]): from the usage records, so any key works, declared in
//! `spec.attribution` or not; calls without the key show as `(none)`.

use std::collections::{BTreeMap, HashSet};

use aigov_api::{AIBudget, ClusterAIBudget, Usd};
use kube::ResourceExt;
use serde::Serialize;

use crate::range::TimeRange;
use crate::records::{ByKey, CallRecord};
use crate::table::{self, Style, TableBuilder};

/// One budget's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    /// `AIBudget` or `ClusterAIBudget`.
    pub kind: &'static str,
    /// The budget's namespace (empty for a ClusterAIBudget).
    pub namespace: String,
    /// The budget's name.
    pub budget: String,
    /// Active, Warning, Throttled, Downgraded, Escalated (or Pending before the first status).
    pub phase: String,
    /// Settled spend this period.
    pub spent: Usd,
    /// The limit in force (spec plus any extension).
    pub limit: Usd,
    /// Spent as a percent of the limit.
    pub percent_used: String,
    /// Projected spend at the period's end (none early in a period).
    pub forecast: Option<Usd>,
    /// The current period, RFC 3339.
    pub period_start: Option<String>,
    /// When spend resets, RFC 3339.
    pub period_end: Option<String>,
    /// Requests this period (refusals included) and those refused or rate-limited.
    pub requests: u64,
    /// Requests refused or rate-limited this period.
    pub throttled_requests: u64,
    /// The last finished period, if any.
    pub last_period: Option<LastPeriod>,
    /// Forecast (or spend so far, without a forecast) against the last period's spend, in
    /// percent; None without a last period.
    pub change_percent: Option<String>,
    /// Models by spend this period.
    pub top_models: Vec<Share>,
    /// Workloads by spend this period (a ClusterAIBudget's are `namespace/workload`).
    pub top_workloads: Vec<Share>,
    /// A ClusterAIBudget's namespaces by spend this period.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_namespaces: Vec<Share>,
}

/// The last finished period.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastPeriod {
    /// First instant, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
    /// Spend.
    pub spent: Usd,
    /// The limit then.
    pub limit: Usd,
}

/// A model's or a workload's part of this period's spend.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Share {
    /// The model or workload.
    pub name: String,
    /// USD.
    pub spent: Usd,
    /// Requests.
    pub requests: u64,
    /// Requests refused or rate-limited (workloads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled_requests: Option<u64>,
}

fn amount(text: Option<&str>) -> Usd {
    text.and_then(|t| Usd::parse(t).ok()).unwrap_or(Usd::ZERO)
}

impl BudgetReport {
    /// The report of one AIBudget, from its status.
    pub fn of(budget: &AIBudget) -> BudgetReport {
        let status = budget.status.clone().unwrap_or_default();
        let spent = amount(status.spent.as_deref());
        let limit = status
            .effective_limit
            .as_deref()
            .and_then(|t| Usd::parse(t).ok())
            .unwrap_or_else(|| amount(Some(&budget.spec.limit)));
        let forecast = status.forecast.as_deref().and_then(|t| Usd::parse(t).ok());
        let last_period = status.history.first().map(|h| LastPeriod {
            start: h.start.clone(),
            end: h.end.clone(),
            spent: amount(Some(&h.spent)),
            limit: amount(Some(&h.limit)),
        });
        let change_percent = last_period.as_ref().and_then(|last| {
            table::percent_change(last.spent, forecast.unwrap_or(spent)).map(|p| p.to_string())
        });
        BudgetReport {
            kind: if budget.namespace().is_some() {
                "AIBudget"
            } else {
                "ClusterAIBudget"
            },
            namespace: budget.namespace().unwrap_or_default(),
            budget: budget.name_any(),
            phase: status
                .phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Pending".to_owned()),
            spent,
            limit,
            percent_used: status.percent_used.clone().unwrap_or_else(|| "0.0".into()),
            forecast,
            period_start: status.period_start.clone(),
            period_end: status.period_end.clone(),
            requests: status.requests,
            throttled_requests: status.throttled_requests,
            last_period,
            change_percent,
            top_models: status
                .top_models
                .iter()
                .map(|m| Share {
                    name: m.model.clone(),
                    spent: amount(Some(&m.spent)),
                    requests: m.requests,
                    throttled_requests: None,
                })
                .collect(),
            top_workloads: status
                .top_workloads
                .iter()
                .map(|w| Share {
                    name: w.workload.clone(),
                    spent: amount(Some(&w.spent)),
                    requests: w.requests,
                    throttled_requests: Some(w.throttled_requests),
                })
                .collect(),
            top_namespaces: status
                .top_namespaces
                .iter()
                .map(|n| Share {
                    name: n.namespace.clone(),
                    spent: amount(Some(&n.spent)),
                    requests: n.requests,
                    throttled_requests: Some(n.throttled_requests),
                })
                .collect(),
        }
    }
}

/// Reports sorted by namespace, then budget: ClusterAIBudgets (as the AIBudget each carries,
/// [`aigov_api::ClusterAIBudget::as_budget`]) first.
pub fn reports(budgets: &[AIBudget], caps: &[ClusterAIBudget]) -> Vec<BudgetReport> {
    let caps = caps.iter().map(|c| BudgetReport::of(&c.as_budget()));
    let mut reports: Vec<_> = budgets.iter().map(BudgetReport::of).chain(caps).collect();
    reports.sort_by(|a, b| (&a.namespace, &a.budget).cmp(&(&b.namespace, &b.budget)));
    reports
}

/// The text a person reads: one summary table, then each budget's top models and workloads.
pub fn render(reports: &[BudgetReport], style: Style) -> String {
    if reports.is_empty() {
        return "No AIBudgets found.\n".to_owned();
    }
    let mut summary = TableBuilder::new(
        style,
        &[
            "NAMESPACE",
            "BUDGET",
            "PHASE",
            "SPENT",
            "LIMIT",
            "USED",
            "FORECAST",
            "LAST PERIOD",
            "CHANGE",
            "REQUESTS",
            "THROTTLED",
            "RESETS",
        ],
    )
    .numeric(&[3, 4, 5, 6, 7, 8, 9, 10]);
    for r in reports {
        let projected = r.forecast.unwrap_or(r.spent);
        let change = r
            .last_period
            .as_ref()
            .map(|l| table::percent_change(l.spent, projected));
        summary.cells(vec![
            namespace_cell(r).into(),
            r.budget.as_str().into(),
            table::phase_cell(&r.phase, style),
            table::money(r.spent).into(),
            table::money(r.limit).into(),
            format!("{}%", r.percent_used).into(),
            r.forecast.map_or("–".to_owned(), table::money).into(),
            r.last_period
                .as_ref()
                .map_or("–".to_owned(), |l| table::money(l.spent))
                .into(),
            table::change_cell(
                r.last_period.as_ref().map_or("–".to_owned(), |l| {
                    table::percent_text(l.spent, projected)
                }),
                change.flatten(),
                style,
            ),
            table::count(r.requests).into(),
            table::count(r.throttled_requests).into(),
            r.period_end
                .as_deref()
                .map_or("–".to_owned(), short_time)
                .into(),
        ]);
    }
    let mut out = summary.render();
    out.push_str("\nFORECAST: spend at the period's end at this period's rate. CHANGE: forecast (or spend so far) against the last period.\n");
    for r in reports.iter().filter(|r| {
        !r.top_models.is_empty() || !r.top_workloads.is_empty() || !r.top_namespaces.is_empty()
    }) {
        out.push('\n');
        let title = match r.kind {
            "AIBudget" => format!("{}/{}", r.namespace, r.budget),
            kind => format!("{kind} {}", r.budget),
        };
        out.push_str(&style.title(&title));
        out.push('\n');
        out.push_str(&shares("MODEL", &r.top_models, r.spent, style));
        if !r.top_namespaces.is_empty() {
            out.push('\n');
            out.push_str(&namespace_tree(r, reports, style));
        }
        out.push('\n');
        out.push_str(&shares("WORKLOAD", &r.top_workloads, r.spent, style));
    }
    out
}

/// `(cluster)` for a ClusterAIBudget, else the namespace.
fn namespace_cell(r: &BudgetReport) -> &str {
    match r.kind {
        "AIBudget" => &r.namespace,
        _ => "(cluster)",
    }
}

/// The tree from a ClusterAIBudget to the teams' budgets: the cap (`name (phase)  spent of
/// limit`, forecast), its namespaces by spend, each followed by the AIBudgets in it the report
/// holds (`└ name (phase)  spent of limit`, forecast). Each level's forecast is its own
/// status's; a namespace is no budget, so has none.
fn namespace_tree(cap: &BudgetReport, reports: &[BudgetReport], style: Style) -> String {
    let headers = [
        "LEVEL",
        "SPENT",
        "FORECAST",
        "SHARE",
        "REQUESTS",
        "THROTTLED",
    ];
    let mut t = TableBuilder::new(style, &headers).numeric(&[1, 2, 3, 4, 5]);
    t.row(budget_row(cap, ""));
    for n in &cap.top_namespaces {
        t.row(vec![
            format!("  {}", n.name),
            table::money(n.spent),
            "–".to_owned(),
            table::share(n.spent, cap.spent),
            table::count(n.requests),
            table::count(n.throttled_requests.unwrap_or(0)),
        ]);
        let within = reports
            .iter()
            .filter(|b| b.kind == "AIBudget" && b.namespace == n.name);
        for b in within {
            t.row(budget_row(b, "    └ "));
        }
    }
    t.render()
}

/// One budget's row in [`namespace_tree`], its name after `indent`.
fn budget_row(b: &BudgetReport, indent: &str) -> Vec<String> {
    vec![
        format!("{indent}{} ({})", b.budget, b.phase),
        format!("{} of {}", table::money(b.spent), table::money(b.limit)),
        b.forecast.map_or("–".to_owned(), table::money),
        String::new(),
        table::count(b.requests),
        table::count(b.throttled_requests),
    ]
}

fn shares(kind: &str, rows: &[Share], total: Usd, style: Style) -> String {
    let with_throttles = rows.iter().any(|r| r.throttled_requests.is_some());
    let mut headers = vec![kind, "SPENT", "SHARE", "REQUESTS"];
    if with_throttles {
        headers.push("THROTTLED");
    }
    let mut t = TableBuilder::new(style, &headers).numeric(&[1, 2, 3, 4]);
    for r in rows {
        let mut cells = vec![
            format!("  {}", r.name),
            table::money(r.spent),
            table::share(r.spent, total),
            table::count(r.requests),
        ];
        if let Some(throttled) = r.throttled_requests {
            cells.push(table::count(throttled));
        }
        t.row(cells);
    }
    t.render()
}

/// One budget's spend over its current period by the values of a request-metadata key.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueReport {
    /// The budget's namespace.
    pub namespace: String,
    /// The budget's name.
    pub budget: String,
    /// The range the records were read over (the budget's period so far).
    pub range: TimeRange,
    /// The key.
    pub by: String,
    /// The values by spend, most first (`(none)`: calls without the key).
    pub values: Vec<Share>,
    /// Spend of every value.
    pub spent: Usd,
    /// Calls of every value.
    pub requests: u64,
}

/// Per budget (with the range of its period so far), its usage records' spend by the values
/// of `by`; a call's record counted once per budget.
pub fn by_value(
    budgets: &[(AIBudget, TimeRange)],
    records: &[CallRecord],
    by: &ByKey,
) -> Vec<ValueReport> {
    let mut reports: Vec<ValueReport> = budgets
        .iter()
        .map(|(budget, range)| {
            let (namespace, name) = (budget.namespace().unwrap_or_default(), budget.name_any());
            let mut seen = HashSet::new();
            let mut sums: BTreeMap<&str, (Usd, u64)> = BTreeMap::new();
            for r in records.iter().filter(|r| {
                r.namespace == namespace && r.budget == name && range.contains(r.timestamp)
            }) {
                if r.request_id.is_empty() || seen.insert(r.request_id.as_str()) {
                    let sum = sums.entry(by.value_of(r)).or_insert((Usd::ZERO, 0));
                    sum.0 += r.cost_usd;
                    sum.1 += 1;
                }
            }
            let mut values: Vec<Share> = sums
                .into_iter()
                .map(|(value, (spent, requests))| Share {
                    name: value.to_owned(),
                    spent,
                    requests,
                    throttled_requests: None,
                })
                .collect();
            values.sort_by(|a, b| b.spent.cmp(&a.spent).then(a.name.cmp(&b.name)));
            ValueReport {
                spent: values.iter().fold(Usd::ZERO, |t, v| t + v.spent),
                requests: values.iter().map(|v| v.requests).sum(),
                namespace,
                budget: name,
                range: *range,
                by: by.key().to_owned(),
                values,
            }
        })
        .collect();
    reports.sort_by(|a, b| (&a.namespace, &a.budget).cmp(&(&b.namespace, &b.budget)));
    reports
}

/// The text a person reads: per budget with calls this period, its values by spend with their
/// share; the budgets without calls are named in one line.
pub fn render_by(reports: &[ValueReport], style: Style) -> String {
    if reports.is_empty() {
        return "No AIBudgets found.\n".to_owned();
    }
    let mut out = String::new();
    let (spending, idle): (Vec<_>, Vec<_>) = reports.iter().partition(|r| r.requests > 0);
    for r in spending {
        out.push_str(&style.title(&format!(
            "{}/{} by {}: {} over {}",
            r.namespace,
            r.budget,
            r.by,
            table::money(r.spent),
            r.range
        )));
        out.push('\n');
        out.push_str(&shares(&r.by.to_uppercase(), &r.values, r.spent, style));
        out.push('\n');
    }
    if !idle.is_empty() {
        let names: Vec<String> = idle
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.budget))
            .collect();
        out.push_str(&format!(
            "No Bedrock calls this period: {}\n",
            names.join(", ")
        ));
    }
    out
}

/// `2026-12-01 00:00 UTC` from RFC 3339.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> AIBudget {
        serde_yaml::from_str(
            r#"
apiVersion: aigov.dev/v1alpha1
kind: AIBudget
metadata: {name: research-daily, namespace: team-research}
spec: {limit: "5.00", period: Daily}
status:
  phase: Throttled
  spent: "4.9968"
  effectiveLimit: "5.00"
  percentUsed: "99.9"
  forecast: "6.00"
  periodEnd: "2026-11-25T00:00:00Z"
  requests: 42
  throttledRequests: 2
  topModels: [{model: anthropic.claude-3-5-sonnet-20240620-v1:0, spent: "4.9968", requests: 40}]
  topWorkloads: [{workload: notebook, spent: "4.9968", requests: 42, throttledRequests: 2}]
  history: [{start: "2026-11-23T00:00:00Z", end: "2026-11-24T00:00:00Z", spent: "4.80", limit: "5.00", requests: 30, throttledRequests: 0}]
"#,
        )
        .unwrap()
    }

    #[test]
    fn a_report_by_a_key_sums_each_budgets_period_by_value_once_per_call() {
        use crate::records::tests::{record, tagged};
        let b = budget();
        let range =
            TimeRange::parse("2026-11-24..2026-11-25", jiff::Timestamp::now(), "x").unwrap();
        let at = "2026-11-24T10:00:00Z";
        let records = [
            tagged(
                record(
                    at,
                    "team-research",
                    "research-daily",
                    "nb",
                    "m",
                    "1.50",
                    "r1",
                ),
                &[("feature", "rag")],
            ),
            tagged(
                record(
                    at,
                    "team-research",
                    "research-daily",
                    "nb",
                    "m",
                    "1.50",
                    "r1",
                ),
                &[("feature", "rag")],
            ),
            tagged(
                record(
                    at,
                    "team-research",
                    "research-daily",
                    "nb",
                    "m",
                    "0.25",
                    "r2",
                ),
                &[("feature", "chat")],
            ),
            record(
                at,
                "team-research",
                "research-daily",
                "nb",
                "m",
                "0.05",
                "r3",
            ),
            tagged(
                record(at, "team-research", "other", "nb", "m", "9.00", "r4"),
                &[("feature", "rag")],
            ),
            tagged(
                record(
                    "2026-11-23T10:00:00Z",
                    "team-research",
                    "research-daily",
                    "nb",
                    "m",
                    "9.00",
                    "r5",
                ),
                &[("feature", "rag")],
            ),
        ];
        let by = ByKey::parse("feature").unwrap();
        let reports = by_value(&[(b, range)], &records, &by);
        let values: Vec<_> = reports[0]
            .values
            .iter()
            .map(|v| (v.name.as_str(), v.spent.to_api_string(), v.requests))
            .collect();
        assert_eq!(
            values,
            [
                ("rag", "1.50".to_owned(), 1),
                ("chat", "0.25".to_owned(), 1),
                ("(none)", "0.05".to_owned(), 1)
            ]
        );
        assert_eq!(reports[0].spent, Usd::parse("1.80").unwrap());
        let text = render_by(&reports, Style::plain());
        assert!(
            text.lines()
                .any(|l| l.starts_with("  rag") && l.contains("$1.50")),
            "{text}"
        );
        let idle = by_value(&[(budget(), range)], &[], &by);
        assert_eq!(
            render_by(&idle, Style::plain()),
            "No Bedrock calls this period: team-research/research-daily\n"
        );
    }

    #[test]
    fn a_report_agrees_with_the_status_it_was_made_from() {
        let r = BudgetReport::of(&budget());
        assert_eq!(r.spent, Usd::parse("4.9968").unwrap());
        assert_eq!(r.phase, "Throttled");
        assert_eq!(r.change_percent.as_deref(), Some("25.0"));
        assert_eq!(r.top_workloads[0].throttled_requests, Some(2));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["spent"], "4.9968");
        assert_eq!(json["lastPeriod"]["spent"], "4.80");
    }

    #[test]
    fn the_rendered_report_shows_phase_amounts_change_and_breakdowns() {
        let text = render(&reports(&[budget()], &[]), Style::plain());
        let row = text.lines().nth(1).unwrap();
        for expected in [
            "team-research",
            "research-daily",
            "Throttled",
            "$5.00",
            "99.9%",
            "$6.00",
            "$4.80",
            "+25.0%",
            "2026-11-25 00:00 UTC",
        ] {
            assert!(row.contains(expected), "{expected} missing from {row:?}");
        }
        assert!(
            text.contains("  anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("  notebook") && l.contains("100%") && l.ends_with('2')),
            "{text}"
        );
    }

    #[test]
    fn a_cluster_budget_comes_first_with_its_namespaces_and_their_budgets_beneath() {
        let cap: ClusterAIBudget = serde_yaml::from_str(
            r#"
apiVersion: aigov.dev/v1alpha1
kind: ClusterAIBudget
metadata: {name: engineering}
spec: {limit: "300.00", namespaceSelector: {matchLabels: {org: engineering}}}
status:
  spent: "5.4968"
  topNamespaces:
  - {namespace: team-research, spent: "4.9968", requests: 42, throttledRequests: 2}
  - {namespace: team-chat, spent: "0.50", requests: 9}
"#,
        )
        .unwrap();
        let all = reports(&[budget()], &[cap]);
        assert_eq!(all[0].kind, "ClusterAIBudget");
        let text = render(&all, Style::plain());
        let first = text.lines().nth(1).unwrap();
        assert!(
            first.starts_with("(cluster)") && first.contains("engineering"),
            "{text}"
        );
        assert!(text.contains("ClusterAIBudget engineering"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let research = lines
            .iter()
            .position(|l| l.starts_with("  team-research"))
            .unwrap();
        assert!(lines[research].contains("91%"), "{}", lines[research]);
        assert!(
            lines[research + 1].contains("└ research-daily (Throttled)")
                && lines[research + 1].contains("$5.00 of $5.00")
                && lines[research + 1].contains("$6.00"),
            "each budget in the tree has its forecast: {text}"
        );
        let top = lines
            .iter()
            .find(|l| l.starts_with("engineering ("))
            .unwrap();
        assert!(
            top.contains("$5.50 of $300.00"),
            "the cap heads its tree: {text}"
        );
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["topNamespaces"][1]["name"], "team-chat");
    }
}
