//! Calls made around the gateway: invocation-log records without the gateway's stamp, signed
//! by an IAM principal the cluster maps to a namespace (the namespace's `aigov.dev/iam-role`
//! annotation, or one of its ServiceAccounts' `eks.amazonaws.com/role-arn`, the annotation EKS
//! uses for IRSA). The pure part says which namespaces a principal belongs to; [`owners`]
//! reads the annotations.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

/// The namespace annotation naming the IAM role a namespace's workloads call Bedrock as.
pub const NAMESPACE_ROLE: &str = "aigov.dev/iam-role";
/// The ServiceAccount annotation EKS uses for IRSA.
pub const SERVICE_ACCOUNT_ROLE: &str = "eks.amazonaws.com/role-arn";

/// `(account, role name)` of a role ARN (`arn:aws:iam::123:role/path/name`) or of the session
/// of an assumed role (`arn:aws:sts::123:assumed-role/name/session`): the role name is what the
/// two share (a session's ARN drops the role's path).
pub fn role_of(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (
        Some("arn"),
        Some(_partition),
        Some(service),
        Some(_region),
        Some(account),
        Some(resource),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    let name = match service {
        "iam" => resource.strip_prefix("role/")?.rsplit('/').next()?,
        "sts" => resource.strip_prefix("assumed-role/")?.split('/').next()?,
        _ => return None,
    };
    Some((account, name)).filter(|(_, n)| !n.is_empty())
}

/// True when `principal` (an invocation log's `identity.arn`) is the role `annotated`, or the
/// very principal it names (an IAM user, say).
pub fn maps_to(annotated: &str, principal: &str) -> bool {
    annotated == principal || role_of(annotated).is_some_and(|r| role_of(principal) == Some(r))
}

/// The namespaces `principal` belongs to, of the `(namespace, annotated ARN)` pairs `owners`.
pub fn namespaces_of<'a>(owners: &'a [(String, String)], principal: &str) -> Vec<&'a str> {
    let mut found: Vec<&str> = owners
        .iter()
        .filter(|(_, arn)| maps_to(arn, principal))
        .map(|(ns, _)| ns.as_str())
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Every `(namespace, role ARN)` the cluster's annotations name, within `scope` if set.
pub async fn owners(
    client: &Client,
    scope: Option<&str>,
) -> Result<Vec<(String, String)>, kube::Error> {
    let params = ListParams::default();
    let mut owners = Vec::new();
    for ns in Api::<Namespace>::all(client.clone()).list(&params).await? {
        if let Some(arn) = ns.annotations().get(NAMESPACE_ROLE) {
            owners.push((ns.name_any(), arn.clone()));
        }
    }
    let accounts: Api<ServiceAccount> = match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    for sa in accounts.list(&params).await? {
        if let (Some(ns), Some(arn)) = (sa.namespace(), sa.annotations().get(SERVICE_ACCOUNT_ROLE))
        {
            owners.push((ns, arn.clone()));
        }
    }
    owners.retain(|(ns, _)| scope.is_none_or(|s| s == ns));
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_of_an_annotated_role_maps_to_its_namespace_and_nothing_else_does() {
        let owners = vec![
            (
                "team".to_owned(),
                "arn:aws:iam::123456789012:role/apps/team-app".to_owned(),
            ),
            (
                "ops".to_owned(),
                "arn:aws:iam::123456789012:user/ops-laptop".to_owned(),
            ),
        ];
        let session = "arn:aws:sts::123456789012:assumed-role/team-app/botocore-session-1";
        assert_eq!(namespaces_of(&owners, session), ["team"]);
        assert_eq!(
            namespaces_of(&owners, "arn:aws:iam::123456789012:user/ops-laptop"),
            ["ops"]
        );
        let other_account = "arn:aws:sts::999999999999:assumed-role/team-app/s";
        assert!(namespaces_of(&owners, other_account).is_empty());
        assert!(
            namespaces_of(&owners, "arn:aws:sts::123456789012:assumed-role/other/s").is_empty()
        );
        assert!(namespaces_of(&owners, "").is_empty());
    }

    #[test]
    fn role_names_are_read_from_role_and_session_arns_only() {
        assert_eq!(role_of("arn:aws:iam::1:role/a/b/name"), Some(("1", "name")));
        assert_eq!(
            role_of("arn:aws:sts::1:assumed-role/name/s"),
            Some(("1", "name"))
        );
        assert_eq!(role_of("arn:aws:iam::1:user/name"), None);
        assert_eq!(role_of("not an arn"), None);
    }
}

/// Calls of one principal to one model made around the gateway, seen by one budget.
#[derive(Debug, Default)]
struct Seen {
    /// The first call's request ID.
    first: String,
    calls: u64,
    cost: aigov_api::Usd,
    charged: bool,
}

impl super::Reader {
    /// For the `unstamped` records of a window: those whose principal maps to a namespace are
    /// bypasses. Each raises a `BypassDetected` Event on the namespace's budgets, and is
    /// charged to those that ask for it (`spec.chargeBypass`). Returns how many were bypasses
    /// and the records that charge them.
    pub(super) async fn bypasses(
        &self,
        unstamped: &[(u64, &super::InvocationLog)],
    ) -> Result<(u64, Vec<aigov_ledger::proto::UsageRecord>), String> {
        if unstamped.is_empty() {
            return Ok((0, Vec::new()));
        }
        let scope = self.options.scope.as_deref();
        let owners = owners(&self.client, scope)
            .await
            .map_err(|e| format!("reading the IAM roles namespaces name: {e}"))?;
        let book = self.shared.prices.current();
        let mut budgets: std::collections::HashMap<String, Vec<aigov_api::AIBudget>> =
            Default::default();
        let mut seen: std::collections::BTreeMap<(String, String, String), Seen> =
            Default::default();
        let (mut count, mut charges) = (0, Vec::new());
        for (sequence, log) in unstamped {
            let namespaces = namespaces_of(&owners, &log.principal);
            count += u64::from(!namespaces.is_empty());
            let mut charge_to = Vec::new();
            for ns in namespaces {
                if !budgets.contains_key(ns) {
                    let api = Api::<aigov_api::AIBudget>::namespaced(self.client.clone(), ns);
                    let listed = api
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| e.to_string())?;
                    budgets.insert(ns.to_owned(), listed.items);
                }
                for budget in &budgets[ns] {
                    let key = aigov_ledger::key::namespaced(ns, &budget.name_any());
                    let s = seen
                        .entry((key.clone(), log.principal.clone(), log.model_id.clone()))
                        .or_default();
                    if s.calls == 0 {
                        s.first = log.request_id.clone();
                    }
                    s.calls += 1;
                    s.cost += log.cost(&book);
                    s.charged = budget.spec.charge_bypass;
                    if budget.spec.charge_bypass {
                        charge_to.push(key);
                    }
                }
            }
            if !charge_to.is_empty() {
                charges.push(charged(*sequence, log, charge_to));
            }
        }
        self.announce(seen);
        Ok((count, charges))
    }

    /// Tells each budget's reconciler, once per principal and model: a `BypassDetected`
    /// Warning Event and an alert to the budget's channels.
    fn announce(&self, seen: std::collections::BTreeMap<(String, String, String), Seen>) {
        for ((key, principal, model), s) in seen {
            let ns = aigov_ledger::key::parts(&key).0.unwrap_or_default();
            let charged = match s.charged {
                true => "charged to this budget (spec.chargeBypass)",
                false => "not charged (set spec.chargeBypass to charge such calls)",
            };
            let note = format!(
                "{} call(s) to {model} made around the aigov gateway by {principal}, an IAM principal mapped to namespace {ns}: ${} at aigov's prices, {charged}; route the workload through the gateway (and deny its role bedrock:Invoke*)",
                s.calls,
                s.cost.to_api_string(),
            );
            self.shared.note_bypass(&key, &s.first, note);
        }
    }
}

/// The record that charges a bypass `log` to `budgets` (marked `metadata_unstamped`, which
/// counts it in `status.bypass`).
fn charged(
    sequence: u64,
    log: &super::InvocationLog,
    budgets: Vec<String>,
) -> aigov_ledger::proto::UsageRecord {
    aigov_ledger::proto::UsageRecord {
        pod_namespace: aigov_ledger::key::parts(&budgets[0])
            .0
            .unwrap_or_default()
            .to_owned(),
        workload: "(bypass)".to_owned(),
        request_metadata: log.metadata.clone().into_iter().collect(),
        metadata_unstamped: true,
        ..super::plan::usage_of(sequence, log, budgets)
    }
}
