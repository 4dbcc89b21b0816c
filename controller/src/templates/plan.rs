//! The pure half of keeping an AIBudgetTemplate: from the template, every template, every
//! namespace and every AIBudget (copies from the controller's caches), which AIBudgets to
//! apply, which to delete, and what the template's status says.
//!
//! Who keeps the AIBudget named `B` in namespace `N`: of the live templates that select `N`
//! and stamp `B`, the oldest (by creation time, then name). An AIBudget of that name made by
//! hand (without the `aigov.dev/template` label) is never taken: every template that would
//! stamp it reports the conflict instead. A stamped AIBudget a template no longer claims is
//! deleted, unless another template claims it (that one adopts it, status and all), or it or
//! its namespace carries `aigov.dev/keep`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aigov_api::organisation::{
    AIBudgetTemplate, AIBudgetTemplateStatus, BUDGET_LIMIT_ANNOTATION, NamespaceOverride,
    TEMPLATE_LABEL, TemplateConflict, annotated_limit,
};
use aigov_api::{AIBudget, AIBudgetSpec};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::{Selector, SelectorExt};
use kube::{Resource, ResourceExt};

/// Annotation on a stamped AIBudget or on its namespace: the template never deletes that
/// AIBudget (its status, the spend history, stays), and stamps it without an ownerReference,
/// so Kubernetes' garbage collector does not delete it with the template either.
pub const KEEP_ANNOTATION: &str = "aigov.dev/keep";
/// Annotation on a stamped AIBudget: the template generation it was last applied from (an
/// edited template is applied again everywhere, removed labels included).
pub const GENERATION_ANNOTATION: &str = "aigov.dev/template-generation";
/// Entries listed in `overridden` and `conflicts` at most (the counts are exact).
pub const MAX_LISTED: usize = 100;
/// What `kept_by` says of an AIBudget made by hand.
pub const A_PERSON: &str = "a person";

/// What the plan needs of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceView {
    /// Its name.
    pub name: String,
    /// Its labels, for the selector.
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`aigov.dev/budget-limit`, `aigov.dev/keep`).
    pub annotations: BTreeMap<String, String>,
}

/// Everything the controller knows, from its caches.
#[derive(Clone, Copy, Debug)]
pub struct World<'a> {
    /// Every AIBudgetTemplate.
    pub templates: &'a [Arc<AIBudgetTemplate>],
    /// Every namespace.
    pub namespaces: &'a [NamespaceView],
    /// Every AIBudget (their status is not needed).
    pub budgets: &'a [Arc<AIBudget>],
}

/// One AIBudget to apply (server-side, forced: the fields it sets are the template's).
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (the template's and `aigov.dev/template`).
    pub labels: BTreeMap<String, String>,
    /// Its annotations (`aigov.dev/template-generation`).
    pub annotations: BTreeMap<String, String>,
    /// The ownerReference to the template, unless the budget is kept.
    pub owner: Option<OwnerReference>,
    /// Its spec (the template's, with the namespace's limit if it sets a good one).
    pub spec: AIBudgetSpec,
}

/// An AIBudget to delete, by UID (a new object under the same name is left alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: Option<String>,
}

/// What one template keeps, before any write: the status figures and the writes to make.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Budgets to apply (missing or not as the template says).
    pub applies: Vec<Stamp>,
    /// Budgets to delete.
    pub removals: Vec<Removal>,
    /// Namespaces where the template keeps its budget.
    pub kept: u32,
    /// Namespaces that set a limit (good or not), by name.
    pub overridden: Vec<NamespaceOverride>,
    /// Namespaces where something else keeps the budget's name.
    pub conflicts: Vec<TemplateConflict>,
    /// Why the template selects nothing, when its selector cannot be read.
    pub selector_error: Option<String>,
}

/// Whether `ns` is selected by `template` (an unreadable selector selects nothing).
pub fn selects(template: &AIBudgetTemplate, ns: &NamespaceView) -> bool {
    selector(template).is_ok_and(|s| s.matches(&ns.labels))
}

/// The template's namespace selector; absent or empty selects every namespace.
fn selector(template: &AIBudgetTemplate) -> Result<Selector, String> {
    match &template.spec.namespace_selector {
        None => Ok(Selector::default()),
        Some(s) => Selector::try_from(s.clone()).map_err(|e| e.to_string()),
    }
}

/// A template that is not being deleted.
fn live(template: &AIBudgetTemplate) -> bool {
    template.meta().deletion_timestamp.is_none()
}

/// The oldest live template that selects `ns` and stamps `name` there: the one that keeps it.
pub fn keeper<'a>(
    world: &World<'a>,
    ns: &NamespaceView,
    name: &str,
) -> Option<&'a AIBudgetTemplate> {
    world
        .templates
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| live(t) && t.spec.budget.name == name && selects(t, ns))
        .min_by(|a, b| age_key(a).cmp(&age_key(b)))
}

/// Older first: creation time, then name.
fn age_key(template: &AIBudgetTemplate) -> (Option<k8s_openapi::jiff::Timestamp>, String) {
    let created = template.meta().creation_timestamp.as_ref().map(|t| t.0);
    (created, template.name_any())
}

/// Whether `annotations` say keep (`aigov.dev/keep` set to anything but `"false"`).
fn says_keep(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(KEEP_ANNOTATION)
        .is_some_and(|v| v != "false")
}

/// Whether the stamped budget `budget` in `ns` is kept (by its or its namespace's annotation).
pub fn kept(budget: &AIBudget, ns: Option<&NamespaceView>) -> bool {
    says_keep(budget.annotations()) || ns.is_some_and(|n| says_keep(&n.annotations))
}

/// The template whose label a budget carries, if any.
pub fn stamped_by(budget: &AIBudget) -> Option<&str> {
    budget.labels().get(TEMPLATE_LABEL).map(String::as_str)
}

/// The budget named `name` in `namespace`, if the caches have one.
fn find<'a>(world: &World<'a>, namespace: &str, name: &str) -> Option<&'a AIBudget> {
    world
        .budgets
        .iter()
        .map(|b| b.as_ref())
        .find(|b| b.namespace().as_deref() == Some(namespace) && b.name_any() == name)
}

/// Plans what `template` keeps.
pub fn plan(template: &AIBudgetTemplate, world: &World<'_>) -> Plan {
    let mut plan = Plan::default();
    if let Err(why) = selector(template) {
        plan.selector_error = Some(why);
    }
    let name = template.spec.budget.name.as_str();
    let mut claimed = BTreeSet::new();
    for ns in world.namespaces.iter().filter(|ns| selects(template, ns)) {
        // A budget made by hand holds its name against every template, the oldest included.
        let existing = find(world, &ns.name, name);
        if existing.is_some_and(|b| stamped_by(b).is_none()) {
            plan.conflicts.push(conflict(ns, A_PERSON));
            continue;
        }
        let keeper = keeper(world, ns, name);
        if let Some(other) = keeper.filter(|k| k.name_any() != template.name_any()) {
            plan.conflicts.push(conflict(
                ns,
                &format!("AIBudgetTemplate {}", other.name_any()),
            ));
            continue;
        }
        claimed.insert(ns.name.clone());
        plan.kept += 1;
        let (stamp, overridden) = stamp(template, ns, existing);
        plan.overridden.extend(overridden);
        if existing.is_none_or(|b| !up_to_date(b, &stamp)) {
            plan.applies.push(stamp);
        }
    }
    plan.removals = unclaimed(world, |b| {
        stamped_by(b) == Some(&template.name_any())
            && !(b.name_any() == name && claimed.contains(&b.namespace().unwrap_or_default()))
    });
    plan
}

/// The stamped budgets `mine` picks that no template claims and nothing keeps: to delete.
/// One another template claims is left for it to adopt (its status, the spend history, goes
/// with it).
fn unclaimed(world: &World<'_>, mine: impl Fn(&AIBudget) -> bool) -> Vec<Removal> {
    world
        .budgets
        .iter()
        .map(|b| b.as_ref())
        .filter(|b| mine(b))
        .filter(|b| {
            let namespace = b.namespace().unwrap_or_default();
            let ns = world.namespaces.iter().find(|n| n.name == namespace);
            let adopted = ns.is_some_and(|ns| {
                keeper(world, ns, &b.name_any())
                    .is_some_and(|k| stamped_by(b) != Some(&k.name_any()))
            });
            !kept(b, ns) && !adopted
        })
        .map(|b| Removal {
            namespace: b.namespace().unwrap_or_default(),
            name: b.name_any(),
            uid: b.uid(),
        })
        .collect()
}

/// Stamped budgets whose template is gone (or being deleted), unless kept or claimed by
/// another template: to delete. Deleting a template therefore deletes its budgets as soon as
/// the controller sees it, or when it next starts.
pub fn orphans(world: &World<'_>) -> Vec<Removal> {
    let live: BTreeSet<String> = world
        .templates
        .iter()
        .filter(|t| live(t))
        .map(|t| t.name_any())
        .collect();
    unclaimed(world, |b| stamped_by(b).is_some_and(|t| !live.contains(t)))
}

fn conflict(ns: &NamespaceView, kept_by: &str) -> TemplateConflict {
    TemplateConflict {
        namespace: ns.name.clone(),
        kept_by: kept_by.to_owned(),
    }
}

/// The budget `template` keeps in `ns`, and the namespace's override if it sets one.
fn stamp(
    template: &AIBudgetTemplate,
    ns: &NamespaceView,
    existing: Option<&AIBudget>,
) -> (Stamp, Option<NamespaceOverride>) {
    let mut spec = template.spec.budget.spec.clone();
    let overridden = ns.annotations.get(BUDGET_LIMIT_ANNOTATION).map(|text| {
        let limit = match annotated_limit(text) {
            Ok(limit) => {
                spec.limit = limit.to_api_string();
                spec.limit.clone()
            }
            Err(why) => why,
        };
        NamespaceOverride {
            namespace: ns.name.clone(),
            limit,
        }
    });
    let mut labels = template.spec.budget.labels.clone();
    labels.insert(TEMPLATE_LABEL.to_owned(), template.name_any());
    let generation = template.meta().generation.unwrap_or_default().to_string();
    let keep = existing.is_some_and(|b| kept(b, Some(ns))) || says_keep(&ns.annotations);
    let stamp = Stamp {
        namespace: ns.name.clone(),
        name: template.spec.budget.name.clone(),
        labels,
        annotations: BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), generation)]),
        owner: (!keep).then(|| owner(template)),
        spec,
    };
    (stamp, overridden)
}

/// The ownerReference to `template` (no `blockOwnerDeletion`: that would need rights on the
/// template's finalizers, and nothing waits on it).
fn owner(template: &AIBudgetTemplate) -> OwnerReference {
    OwnerReference {
        api_version: "aigov.dev/v1alpha1".to_owned(),
        kind: "AIBudgetTemplate".to_owned(),
        name: template.name_any(),
        uid: template.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// Whether `budget` already is as `stamp` says: the same spec, labels and generation
/// annotation present, and exactly the template ownerReference wanted. A hand edit of any of
/// those is put back.
fn up_to_date(budget: &AIBudget, stamp: &Stamp) -> bool {
    let has_all = |have: &BTreeMap<String, String>, want: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    let template_owners: Vec<&OwnerReference> = budget
        .owner_references()
        .iter()
        .filter(|o| o.kind == "AIBudgetTemplate")
        .collect();
    let owners_ok = match &stamp.owner {
        Some(want) => template_owners.len() == 1 && template_owners[0].uid == want.uid,
        None => template_owners.is_empty(),
    };
    budget.spec == stamp.spec
        && has_all(budget.labels(), &stamp.labels)
        && has_all(budget.annotations(), &stamp.annotations)
        && owners_ok
}

/// What went wrong writing one budget, for the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The namespace.
    pub namespace: String,
    /// The API server's answer.
    pub message: String,
}

/// The template's status after `plan` was carried out (`failures`: the writes refused);
/// conditions keep their `lastTransitionTime` from `previous` while their status holds.
pub fn status(
    template: &AIBudgetTemplate,
    plan: &Plan,
    failures: &[Failure],
    now: Timestamp,
) -> AIBudgetTemplateStatus {
    let previous = template.status.as_ref();
    let generation = template.meta().generation;
    let previous_conditions = previous.map_or(&[][..], |p| p.conditions.as_slice());
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        crate::status::make_condition(
            previous_conditions,
            type_,
            ok,
            reason,
            message,
            generation,
            now,
        )
    };
    let name = &template.spec.budget.name;
    let ready = match (&plan.selector_error, failures.first()) {
        (Some(why), _) => condition("Ready", false, "SelectorInvalid", why.clone()),
        (None, Some(first)) => condition(
            "Ready",
            false,
            "ApplyFailed",
            format!(
                "{} of the AIBudgets named {name} could not be written; {}: {}",
                failures.len(),
                first.namespace,
                first.message
            ),
        ),
        (None, None) => condition(
            "Ready",
            true,
            "BudgetsKept",
            format!("keeps the AIBudget {name} in {} namespaces", plan.kept),
        ),
    };
    let conflicted = condition(
        "Conflict",
        !plan.conflicts.is_empty(),
        if plan.conflicts.is_empty() {
            "NoConflict"
        } else {
            "NameTaken"
        },
        conflict_message(name, &plan.conflicts),
    );
    AIBudgetTemplateStatus {
        observed_generation: generation,
        budgets: plan.kept,
        overridden_count: u32::try_from(plan.overridden.len()).unwrap_or(u32::MAX),
        overridden: plan.overridden.iter().take(MAX_LISTED).cloned().collect(),
        conflicts: plan.conflicts.iter().take(MAX_LISTED).cloned().collect(),
        conditions: vec![ready, conflicted],
    }
}

/// The Conflict condition's message: how many, and the first few.
fn conflict_message(name: &str, conflicts: &[TemplateConflict]) -> String {
    if conflicts.is_empty() {
        return format!("no other AIBudget named {name} in the namespaces selected");
    }
    let first: Vec<String> = conflicts
        .iter()
        .take(3)
        .map(|c| format!("{} (kept by {})", c.namespace, c.kept_by))
        .collect();
    format!(
        "{} namespaces have an AIBudget named {name} this template does not keep: {}{}",
        conflicts.len(),
        first.join(", "),
        if conflicts.len() > 3 { ", ..." } else { "" }
    )
}

/// The Warning Events the new status calls for, as `(reason, note)`: a namespace annotation
/// that is not a limit, and a conflict, each the first time the status shows it.
pub fn warnings(
    previous: Option<&AIBudgetTemplateStatus>,
    status: &AIBudgetTemplateStatus,
) -> Vec<(&'static str, String)> {
    let empty = AIBudgetTemplateStatus::default();
    let previous = previous.unwrap_or(&empty);
    let bad_overrides = status
        .overridden
        .iter()
        .filter(|o| annotated_limit(&o.limit).is_err() && !previous.overridden.contains(o))
        .map(|o| {
            let note = format!(
                "namespace {}: {}; the template's limit applies",
                o.namespace, o.limit
            );
            ("OverrideInvalid", note)
        });
    let conflicts = status
        .conflicts
        .iter()
        .filter(|c| !previous.conflicts.contains(c))
        .map(|c| {
            let note = format!(
                "namespace {} already has an AIBudget of this name, kept by {}: this template leaves it alone",
                c.namespace, c.kept_by
            );
            ("Conflict", note)
        });
    bad_overrides.chain(conflicts).collect()
}
