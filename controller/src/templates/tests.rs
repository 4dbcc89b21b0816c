//! The template plan, without an API server.

use std::collections::BTreeMap;
use std::sync::Arc;

use aigov_api::organisation::{
    AIBudgetTemplate, AIBudgetTemplateSpec, BUDGET_LIMIT_ANNOTATION, BudgetTemplate, TEMPLATE_LABEL,
};
use aigov_api::{AIBudget, AIBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::ResourceExt;

use super::plan::{self, A_PERSON, KEEP_ANNOTATION, NamespaceView, World};

fn spec(limit: &str) -> AIBudgetSpec {
    serde_json::from_value(serde_json::json!({"limit": limit})).expect("a budget spec")
}

/// A template `name` created at second `age`, selecting `team=<team>`, stamping `budget`.
fn template(name: &str, age: i64, team: &str, budget: &str) -> AIBudgetTemplate {
    let mut t = AIBudgetTemplate::new(
        name,
        AIBudgetTemplateSpec {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("team".to_owned(), team.to_owned())])),
                match_expressions: None,
            }),
            budget: BudgetTemplate {
                name: budget.to_owned(),
                labels: BTreeMap::from([("cost-centre".to_owned(), "42".to_owned())]),
                spec: spec("100.00"),
            },
        },
    );
    t.metadata.uid = Some(format!("uid-{name}"));
    t.metadata.generation = Some(1);
    t.metadata.creation_timestamp = Some(Time(
        k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + age).expect("a time"),
    ));
    t
}

fn namespace(name: &str, team: &str, annotations: &[(&str, &str)]) -> NamespaceView {
    NamespaceView {
        name: name.to_owned(),
        labels: BTreeMap::from([("team".to_owned(), team.to_owned())]),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// A budget as the caches would hold it after `stamp` was applied.
fn applied(stamp: &plan::Stamp) -> AIBudget {
    let mut b = AIBudget::new(&stamp.name, stamp.spec.clone());
    b.metadata.namespace = Some(stamp.namespace.clone());
    b.metadata.uid = Some(format!("uid-{}-{}", stamp.namespace, stamp.name));
    b.metadata.labels = Some(stamp.labels.clone());
    b.metadata.annotations = Some(stamp.annotations.clone());
    b.metadata.owner_references = stamp.owner.clone().map(|o| vec![o]);
    b
}

fn by_hand(ns: &str, name: &str) -> AIBudget {
    let mut b = AIBudget::new(name, spec("5.00"));
    b.metadata.namespace = Some(ns.to_owned());
    b
}

fn world<'a>(
    templates: &'a [Arc<AIBudgetTemplate>],
    namespaces: &'a [NamespaceView],
    budgets: &'a [Arc<AIBudget>],
) -> World<'a> {
    World {
        templates,
        namespaces,
        budgets,
    }
}

#[test]
fn every_selected_namespace_gets_the_budget_owned_and_labelled_and_others_get_none() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [
        namespace("one", "a", &[]),
        namespace("two", "a", &[]),
        namespace("other", "b", &[]),
    ];
    let p = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let where_: Vec<&str> = p.applies.iter().map(|s| s.namespace.as_str()).collect();
    assert_eq!(where_, ["one", "two"]);
    assert_eq!(p.kept, 2);
    let s = &p.applies[0];
    assert_eq!(s.name, "team-default");
    assert_eq!(s.labels[TEMPLATE_LABEL], "standard");
    assert_eq!(s.labels["cost-centre"], "42");
    let owner = s.owner.as_ref().expect("an ownerReference");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("AIBudgetTemplate", "uid-standard")
    );
    assert_eq!(s.spec.limit, "100.00");
    assert!(p.removals.is_empty() && p.conflicts.is_empty());
}

#[test]
fn a_budget_already_as_the_template_says_is_not_written_again_but_a_hand_edit_is_put_back() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let first = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let mut budget = applied(&first.applies[0]);
    let budgets = [Arc::new(budget.clone())];
    let again = plan::plan(&t, &world(&templates, &namespaces, &budgets));
    assert!(again.applies.is_empty(), "{again:?}");
    assert_eq!(again.kept, 1);
    budget.spec.limit = "9999.00".to_owned();
    let edited = [Arc::new(budget)];
    let put_back = plan::plan(&t, &world(&templates, &namespaces, &edited));
    assert_eq!(put_back.applies.len(), 1);
    assert_eq!(put_back.applies[0].spec.limit, "100.00");
}

#[test]
fn an_edited_template_is_applied_again_everywhere() {
    let mut t = template("standard", 0, "a", "team-default");
    let namespaces = [namespace("one", "a", &[]), namespace("two", "a", &[])];
    let templates = [Arc::new(t.clone())];
    let first = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let budgets: Vec<Arc<AIBudget>> = first.applies.iter().map(|s| Arc::new(applied(s))).collect();
    t.spec.budget.spec.limit = "150.00".to_owned();
    t.metadata.generation = Some(2);
    let templates = [Arc::new(t.clone())];
    let p = plan::plan(&t, &world(&templates, &namespaces, &budgets));
    assert_eq!(p.applies.len(), 2);
    assert!(p.applies.iter().all(|s| s.spec.limit == "150.00"));
    assert!(
        p.applies
            .iter()
            .all(|s| s.annotations[super::GENERATION_ANNOTATION] == "2")
    );
}

#[test]
fn a_namespace_annotation_sets_its_limit_and_a_bad_one_keeps_the_templates_and_says_why() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [
        namespace("big", "a", &[(BUDGET_LIMIT_ANNOTATION, "1200")]),
        namespace("typo", "a", &[(BUDGET_LIMIT_ANNOTATION, "$5")]),
        namespace("plain", "a", &[]),
    ];
    let p = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let limits: BTreeMap<&str, &str> = p
        .applies
        .iter()
        .map(|s| (s.namespace.as_str(), s.spec.limit.as_str()))
        .collect();
    assert_eq!(
        limits,
        BTreeMap::from([("big", "1200.00"), ("typo", "100.00"), ("plain", "100.00")])
    );
    assert_eq!(p.overridden.len(), 2);
    assert_eq!(
        (
            p.overridden[0].namespace.as_str(),
            p.overridden[0].limit.as_str()
        ),
        ("big", "1200.00")
    );
    assert!(
        p.overridden[1].limit.contains("is not a limit"),
        "{:?}",
        p.overridden[1]
    );
    let status = plan::status(&t, &p, &[], jiff::Timestamp::UNIX_EPOCH);
    assert_eq!((status.budgets, status.overridden_count), (3, 2));
    let warned = plan::warnings(None, &status);
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].0, "OverrideInvalid");
    assert!(warned[0].1.contains("namespace typo"), "{warned:?}");
    assert!(
        plan::warnings(Some(&status), &status).is_empty(),
        "told once"
    );
}

#[test]
fn a_namespace_that_stops_matching_loses_its_budget_unless_kept() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let matching = [namespace("one", "a", &[]), namespace("two", "a", &[])];
    let first = plan::plan(&t, &world(&templates, &matching, &[]));
    let budgets: Vec<Arc<AIBudget>> = first.applies.iter().map(|s| Arc::new(applied(s))).collect();
    let moved = [
        namespace("one", "b", &[]),
        namespace("two", "b", &[(KEEP_ANNOTATION, "true")]),
    ];
    let p = plan::plan(&t, &world(&templates, &moved, &budgets));
    let gone: Vec<&str> = p.removals.iter().map(|r| r.namespace.as_str()).collect();
    assert_eq!(gone, ["one"]);
    assert_eq!(p.removals[0].uid.as_deref(), Some("uid-one-team-default"));
    assert_eq!(p.kept, 0);
}

#[test]
fn a_kept_budget_is_stamped_without_an_owner_reference() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let first = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let mut budget = applied(&first.applies[0]);
    budget
        .annotations_mut()
        .insert(KEEP_ANNOTATION.to_owned(), "finance wants it".to_owned());
    let budgets = [Arc::new(budget)];
    let p = plan::plan(&t, &world(&templates, &namespaces, &budgets));
    assert_eq!(p.applies.len(), 1);
    assert!(p.applies[0].owner.is_none());
}

#[test]
fn the_older_template_keeps_a_shared_name_and_the_newer_reports_the_conflict() {
    let older = template("older", 0, "a", "team-default");
    let newer = template("newer", 10, "a", "team-default");
    let templates = [Arc::new(newer.clone()), Arc::new(older.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let w = world(&templates, &namespaces, &[]);
    let kept = plan::plan(&older, &w);
    assert_eq!(kept.applies.len(), 1);
    let lost = plan::plan(&newer, &w);
    assert!(lost.applies.is_empty());
    assert_eq!(lost.conflicts.len(), 1);
    assert_eq!(lost.conflicts[0].kept_by, "AIBudgetTemplate older");
    let status = plan::status(&newer, &lost, &[], jiff::Timestamp::UNIX_EPOCH);
    let conflict = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Conflict")
        .expect("Conflict");
    assert_eq!(
        (conflict.status.as_str(), conflict.reason.as_str()),
        ("True", "NameTaken")
    );
}

#[test]
fn a_budget_the_newer_template_stamped_is_adopted_by_the_older_not_deleted() {
    let older = template("older", 0, "b", "team-default");
    let newer = template("newer", 10, "a", "team-default");
    let namespaces = [namespace("one", "a", &[])];
    let templates = [Arc::new(newer.clone()), Arc::new(older.clone())];
    let first = plan::plan(&newer, &world(&templates, &namespaces, &[]));
    let budgets = [Arc::new(applied(&first.applies[0]))];
    // The namespace now matches both: the older takes the budget over, the newer leaves it.
    let mut labels = namespaces[0].clone();
    labels.labels.insert("team".to_owned(), "a".to_owned());
    let mut older_wide = older.clone();
    older_wide.spec.namespace_selector = None;
    let templates = [Arc::new(newer.clone()), Arc::new(older_wide.clone())];
    let w = world(&templates, &namespaces, &budgets);
    let adopting = plan::plan(&older_wide, &w);
    assert_eq!(adopting.applies.len(), 1);
    assert_eq!(adopting.applies[0].labels[TEMPLATE_LABEL], "older");
    let leaving = plan::plan(&newer, &w);
    assert!(leaving.removals.is_empty(), "{leaving:?}");
    assert_eq!(leaving.conflicts[0].kept_by, "AIBudgetTemplate older");
}

#[test]
fn a_budget_made_by_hand_is_never_overwritten_and_the_conflict_names_a_person() {
    let t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let budgets = [Arc::new(by_hand("one", "team-default"))];
    let p = plan::plan(&t, &world(&templates, &namespaces, &budgets));
    assert!(p.applies.is_empty() && p.removals.is_empty());
    assert_eq!(p.conflicts[0].kept_by, A_PERSON);
    assert_eq!(p.kept, 0);
}

#[test]
fn a_deleted_templates_budgets_are_orphans_unless_kept_or_claimed_by_another() {
    let gone = template("gone", 0, "a", "team-default");
    let namespaces = [
        namespace("one", "a", &[]),
        namespace("two", "a", &[(KEEP_ANNOTATION, "yes")]),
        namespace("three", "c", &[]),
    ];
    let templates = [Arc::new(gone.clone())];
    let first = plan::plan(&gone, &world(&templates, &namespaces, &[]));
    let mut budgets: Vec<Arc<AIBudget>> =
        first.applies.iter().map(|s| Arc::new(applied(s))).collect();
    let mut claimed = applied(&first.applies[0]);
    claimed.metadata.namespace = Some("three".to_owned());
    budgets.push(Arc::new(claimed));
    budgets.push(Arc::new(by_hand("one", "unrelated")));
    let other = template("other", 5, "c", "team-default");
    let after = [Arc::new(other)];
    let orphans = plan::orphans(&world(&after, &namespaces, &budgets));
    let where_: Vec<&str> = orphans.iter().map(|r| r.namespace.as_str()).collect();
    assert_eq!(where_, ["one"]);
    assert!(plan::orphans(&world(&templates, &namespaces, &budgets)).is_empty());
}

#[test]
fn a_renamed_budget_replaces_the_old_name() {
    let mut t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let first = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let budgets = [Arc::new(applied(&first.applies[0]))];
    t.spec.budget.name = "team-monthly".to_owned();
    let templates = [Arc::new(t.clone())];
    let p = plan::plan(&t, &world(&templates, &namespaces, &budgets));
    assert_eq!(p.applies[0].name, "team-monthly");
    assert_eq!(p.removals[0].name, "team-default");
}

#[test]
fn conditions_keep_their_transition_time_while_their_status_holds() {
    let mut t = template("standard", 0, "a", "team-default");
    let templates = [Arc::new(t.clone())];
    let namespaces = [namespace("one", "a", &[])];
    let p = plan::plan(&t, &world(&templates, &namespaces, &[]));
    let first = plan::status(&t, &p, &[], jiff::Timestamp::UNIX_EPOCH);
    t.status = Some(first.clone());
    let later = plan::status(
        &t,
        &p,
        &[],
        jiff::Timestamp::from_second(1000).expect("a time"),
    );
    assert_eq!(first, later);
    let failed = [plan::Failure {
        namespace: "one".to_owned(),
        message: "refused".to_owned(),
    }];
    let refused = plan::status(
        &t,
        &p,
        &failed,
        jiff::Timestamp::from_second(1000).expect("a time"),
    );
    let ready = &refused.conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ApplyFailed")
    );
    assert!(ready.message.contains("one: refused"), "{}", ready.message);
}
