//! Reading usage records back from the CloudWatch Logs group the controller writes EMF to.

use aws_sdk_cloudwatchlogs::Client;

use crate::error::{Error, Result};
use crate::range::TimeRange;
use crate::records::{CallRecord, from_emf};
use aigov_ledger::invocation_log::InvocationLog;

/// Every aigov usage record in `group` whose call falls in `range`, in log order, each call and
/// budget once: the controller writes each record once, and a record seen twice (a leader that
/// died between writing it and having it acknowledged) is read once here all the same. Lines
/// that are not usage records (anything else written to the group) are skipped.
pub async fn fetch(client: &Client, group: &str, range: &TimeRange) -> Result<Vec<CallRecord>> {
    let mut pages = client
        .filter_log_events()
        .log_group_name(group)
        .start_time(range.from.as_millisecond())
        // FilterLogEvents' end is inclusive; ours is not.
        .end_time(range.to.as_millisecond() - 1)
        .into_paginator()
        .send();
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            let e = e.into_service_error();
            if e.is_resource_not_found_exception() {
                Error::UsageRecords(format!(
                    "log group {group:?} does not exist: pass --log-group with the group the controller writes to (its --emf-log-group)"
                ))
            } else {
                Error::UsageRecords(format!(
                    "reading {group:?}: {}",
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)
                ))
            }
        })?;
        records.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message())
                .filter_map(from_emf)
                .filter(|r| range.contains(r.timestamp))
                .filter(|r| {
                    let key = (r.request_id.clone(), r.namespace.clone(), r.budget.clone());
                    r.request_id.is_empty() || seen.insert(key)
                }),
        );
    }
    Ok(records)
}

/// Every Bedrock model invocation log record in `group` logged within `range`.
pub async fn fetch_invocations(
    client: &Client,
    group: &str,
    range: &TimeRange,
) -> Result<Vec<InvocationLog>> {
    let mut pages = client
        .filter_log_events()
        .log_group_name(group)
        .start_time(range.from.as_millisecond())
        .end_time(range.to.as_millisecond() - 1)
        .into_paginator()
        .send();
    let mut logs = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            Error::UsageRecords(format!(
                "reading the invocation logs in {group:?} (--invocation-log-group: the group Bedrock's model invocation logging writes to): {}",
                aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e)
            ))
        })?;
        for event in page.events() {
            if let (Some(at), Some(message)) = (event.timestamp(), event.message()) {
                logs.extend(InvocationLog::from_event(at, message));
            }
        }
    }
    Ok(logs)
}
