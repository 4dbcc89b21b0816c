use super::*;
use crate::alerts::Channel;

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn hook() -> Channel {
    Channel::Webhook {
        namespace: "team".into(),
        secret: "slack".into(),
        key: "url".into(),
    }
}

fn sns() -> Channel {
    Channel::Sns("arn:aws:sns:us-east-1:123456789012:spend".into())
}

fn alert(kind: &str, channel: Channel, urgent: bool) -> Alert {
    Alert {
        id: alert_id("uid-1", "2026-11-01T00:00:00Z", kind, &channel.to_status()),
        channel,
        subject: format!("subject {kind}"),
        message: format!("message {kind}"),
        urgent,
    }
}

fn retry() -> Retry {
    Retry::default()
}

/// The outbox after recording `alerts` at `now` into an empty one.
fn recorded(alerts: &[Alert], now: &str) -> AlertOutbox {
    advance(
        None,
        alerts,
        &Outcomes::default(),
        at(now),
        retry(),
        10 * MIN,
    )
    .outbox
    .unwrap()
}

#[test]
fn the_backoff_doubles_from_one_second_and_is_capped() {
    let waits: Vec<u64> = (1..=11).map(|n| backoff(n, 5 * MIN).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(backoff(u32::MAX, 5 * MIN), 5 * MIN, "no overflow");
    assert_eq!(backoff(5, Duration::from_secs(8)), Duration::from_secs(8));
}

#[test]
fn an_alert_id_names_its_kind_and_is_the_same_in_every_process_and_build() {
    let channel = hook().to_status();
    let id = alert_id("uid-1", "2026-11-01T00:00:00Z", "threshold50", &channel);
    // FNV-1a 64 over the NUL-terminated parts, computed independently (Python).
    assert_eq!(id, "threshold50-beaefd21a7d8ee97");
    let other = |uid, start, kind, c: &Channel| alert_id(uid, start, kind, &c.to_status());
    let ids = [
        other("uid-2", "2026-11-01T00:00:00Z", "threshold50", &hook()),
        other("uid-1", "2026-12-01T00:00:00Z", "threshold50", &hook()),
        other("uid-1", "2026-11-01T00:00:00Z", "threshold80", &hook()),
        other("uid-1", "2026-11-01T00:00:00Z", "threshold50", &sns()),
    ];
    for (i, other) in ids.iter().enumerate() {
        assert_ne!(*other, id, "variant {i} must differ");
    }
}

#[test]
fn a_new_alert_is_recorded_pending_and_never_twice() {
    let a = alert("threshold50", hook(), false);
    let outbox = recorded(std::slice::from_ref(&a), "2026-11-15T00:00:00Z");
    let [p] = outbox.pending.as_slice() else {
        panic!("{outbox:?}")
    };
    assert_eq!(
        (p.id.as_str(), p.created_at.as_str(), p.attempts, p.urgent),
        (a.id.as_str(), "2026-11-15T00:00:00Z", 0, false)
    );
    assert_eq!(p.channel.webhook_secret_ref.as_ref().unwrap().name, "slack");
    // Planned again (a reconcile over a status older than the one written): no second entry.
    let again = advance(
        Some(&outbox),
        std::slice::from_ref(&a),
        &Outcomes::default(),
        at("2026-11-15T00:00:01Z"),
        retry(),
        10 * MIN,
    );
    assert_eq!(again.outbox.unwrap().pending.len(), 1);
}

#[test]
fn a_delivered_alert_leaves_pending_is_remembered_and_is_not_queued_again() {
    let a = alert("threshold50", hook(), false);
    let outbox = recorded(std::slice::from_ref(&a), "2026-11-15T00:00:00Z");
    let mut outcomes = Outcomes::default();
    let delivered = Delivered {
        at: at("2026-11-15T00:00:02Z"),
        attempts: 3,
    };
    outcomes.delivered.insert(a.id.clone(), delivered.clone());
    let now = at("2026-11-15T00:00:03Z");
    let advanced = advance(Some(&outbox), &[], &outcomes, now, retry(), 10 * MIN);
    let written = advanced.outbox.clone().unwrap();
    assert!(written.pending.is_empty());
    assert_eq!(written.delivered.len(), 1);
    assert_eq!(
        (
            written.delivered[0].delivered_at.as_str(),
            written.delivered[0].attempts
        ),
        ("2026-11-15T00:00:02Z", 3)
    );
    assert_eq!(advanced.delivered.len(), 1);
    assert_eq!(advanced.delivered[0].1, delivered);
    // The threshold planned again over the stale status: the delivered list stops it, and so
    // do the outcomes alone (status not yet showing the delivery).
    for (status, outcomes) in [(&written, Outcomes::default()), (&outbox, outcomes)] {
        let again = advance(
            Some(status),
            std::slice::from_ref(&a),
            &outcomes,
            now,
            retry(),
            10 * MIN,
        );
        assert!(again.outbox.unwrap().pending.is_empty());
    }
}

#[test]
fn a_failed_attempt_is_recorded_with_its_error_and_backoff_and_older_news_is_ignored() {
    let a = alert("threshold50", hook(), false);
    let outbox = recorded(std::slice::from_ref(&a), "2026-11-15T00:00:00Z");
    let mut outcomes = Outcomes::default();
    let failed = |attempts| Failed {
        attempts,
        at: at("2026-11-15T00:00:10Z"),
        next_at: at("2026-11-15T00:00:18Z"),
        error: "webhook: connection refused".into(),
    };
    outcomes.failed.insert(a.id.clone(), failed(4));
    let now = at("2026-11-15T00:00:11Z");
    let written = advance(Some(&outbox), &[], &outcomes, now, retry(), 10 * MIN)
        .outbox
        .unwrap();
    let p = &written.pending[0];
    assert_eq!(
        (
            p.attempts,
            p.next_attempt_at.as_deref(),
            p.last_error.as_deref()
        ),
        (
            4,
            Some("2026-11-15T00:00:18Z"),
            Some("webhook: connection refused")
        )
    );
    outcomes.failed.insert(a.id.clone(), failed(2));
    let kept = advance(Some(&written), &[], &outcomes, now, retry(), 10 * MIN);
    assert_eq!(kept.outbox.unwrap().pending[0].attempts, 4);
}

#[test]
fn an_alert_past_the_retry_horizon_is_dropped_and_one_inside_it_is_kept() {
    let a = alert("threshold50", hook(), false);
    let outbox = recorded(std::slice::from_ref(&a), "2026-11-15T00:00:00Z");
    let horizon = Retry {
        horizon: 2 * HOUR,
        ..retry()
    };
    let inside = advance(
        Some(&outbox),
        &[],
        &Outcomes::default(),
        at("2026-11-15T01:59:59Z"),
        horizon,
        10 * MIN,
    );
    assert!(inside.dropped.is_empty());
    let past = advance(
        Some(&outbox),
        &[],
        &Outcomes::default(),
        at("2026-11-15T02:00:00Z"),
        horizon,
        10 * MIN,
    );
    assert_eq!(past.dropped.len(), 1);
    assert_eq!(past.dropped[0].1, DropReason::Horizon);
    assert!(past.outbox.unwrap().pending.is_empty());
}

#[test]
fn past_the_cap_the_oldest_non_urgent_alert_is_dropped() {
    let mut alerts = vec![alert("exhausted", sns(), true)];
    alerts.extend((0..PENDING_CAP).map(|i| alert(&format!("threshold{i}"), sns(), false)));
    let advanced = advance(
        None,
        &alerts,
        &Outcomes::default(),
        at("2026-11-15T00:00:00Z"),
        retry(),
        10 * MIN,
    );
    let outbox = advanced.outbox.unwrap();
    assert_eq!(outbox.pending.len(), PENDING_CAP);
    assert_eq!(advanced.dropped.len(), 1);
    assert_eq!(
        advanced.dropped[0].0.id, alerts[1].id,
        "the oldest non-urgent"
    );
    assert_eq!(advanced.dropped[0].1, DropReason::Overflow);
    assert!(
        outbox.pending.iter().any(|p| p.urgent),
        "the urgent one stays"
    );
}

#[test]
fn delivered_alerts_are_remembered_newest_first_at_most_twenty_and_for_an_hour_or_the_cooldown() {
    let mut outbox = AlertOutbox::default();
    for i in 0..25 {
        outbox.delivered.push(DeliveredAlert {
            id: format!("a{i}"),
            channel: sns().to_status(),
            delivered_at: format!("2026-11-15T00:{i:02}:00Z"),
            attempts: 1,
        });
    }
    let now = at("2026-11-15T01:10:00Z");
    let kept = advance(Some(&outbox), &[], &Outcomes::default(), now, retry(), MIN)
        .outbox
        .unwrap();
    let ids: Vec<&str> = kept.delivered.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.first(), Some(&"a24"));
    assert_eq!(ids.len(), 14, "older than an hour forgotten: {ids:?}");
    let long_cooldown = advance(
        Some(&outbox),
        &[],
        &Outcomes::default(),
        now,
        retry(),
        2 * HOUR,
    );
    assert_eq!(
        long_cooldown.outbox.unwrap().delivered.len(),
        DELIVERED_KEPT
    );
}

#[test]
fn within_the_cooldown_alerts_wait_and_an_urgent_one_takes_them_along_in_one_message() {
    let mut outbox = recorded(
        &[
            alert("threshold50", hook(), false),
            alert("threshold80", hook(), false),
        ],
        "2026-11-15T00:05:00Z",
    );
    outbox.delivered.push(DeliveredAlert {
        id: "earlier".into(),
        channel: hook().to_status(),
        delivered_at: "2026-11-15T00:00:00Z".into(),
        attempts: 1,
    });
    assert!(due(&outbox, 10 * MIN, at("2026-11-15T00:09:59Z"), &[]).is_empty());
    let [batch] = due(&outbox, 10 * MIN, at("2026-11-15T00:10:00Z"), &[])
        .try_into()
        .unwrap();
    assert_eq!(batch.message, "message threshold50\nmessage threshold80");
    assert_eq!(batch.subject, "subject threshold80");

    let urgent = advance(
        Some(&outbox),
        &[alert("threshold100", hook(), true)],
        &Outcomes::default(),
        at("2026-11-15T00:06:00Z"),
        retry(),
        10 * MIN,
    )
    .outbox
    .unwrap();
    let [batch] = due(&urgent, 10 * MIN, at("2026-11-15T00:06:00Z"), &[])
        .try_into()
        .unwrap();
    assert_eq!(batch.ids.len(), 3, "the held ones go along");
    let busy = [channel_key(&hook().to_status())];
    assert!(due(&urgent, 10 * MIN, at("2026-11-15T00:06:00Z"), &busy).is_empty());
}

#[test]
fn a_failing_channel_waits_for_its_backoff_but_a_fresh_urgent_alert_tries_at_once() {
    let mut outbox = recorded(
        &[alert("threshold50", sns(), false)],
        "2026-11-15T00:00:00Z",
    );
    outbox.pending[0].attempts = 3;
    outbox.pending[0].next_attempt_at = Some("2026-11-15T00:00:07Z".into());
    outbox.pending[0].last_error = Some("refused".into());
    assert!(due(&outbox, MIN, at("2026-11-15T00:00:06Z"), &[]).is_empty());
    assert_eq!(due(&outbox, MIN, at("2026-11-15T00:00:07Z"), &[]).len(), 1);
    let with_urgent = advance(
        Some(&outbox),
        &[alert("exhausted", sns(), true)],
        &Outcomes::default(),
        at("2026-11-15T00:00:05Z"),
        retry(),
        MIN,
    )
    .outbox
    .unwrap();
    let [batch] = due(&with_urgent, MIN, at("2026-11-15T00:00:05Z"), &[])
        .try_into()
        .unwrap();
    assert_eq!(batch.attempts, [3, 0]);
}

#[test]
fn what_the_watch_shows_is_forgotten_from_the_outcomes() {
    let a = alert("threshold50", hook(), false);
    let pending = recorded(std::slice::from_ref(&a), "2026-11-15T00:00:00Z");
    let mut outcomes = Outcomes::default();
    let d = Delivered {
        at: at("2026-11-15T00:00:02Z"),
        attempts: 1,
    };
    outcomes.delivered.insert(a.id.clone(), d);
    let now = at("2026-11-15T00:00:03Z");
    let written = advance(Some(&pending), &[], &outcomes, now, retry(), MIN)
        .outbox
        .unwrap();
    outcomes.prune(Some(&pending), now, retry().horizon);
    assert_eq!(outcomes.delivered.len(), 1, "not shown yet: kept");
    outcomes.prune(Some(&written), now, retry().horizon);
    assert!(outcomes.is_empty(), "shown: forgotten");
}

#[test]
fn failing_channels_report_their_alerts_attempts_oldest_time_and_latest_error() {
    let mut outbox = recorded(
        &[
            alert("threshold50", hook(), false),
            alert("threshold80", hook(), false),
        ],
        "2026-11-15T00:00:00Z",
    );
    outbox.pending[1].created_at = "2026-11-15T00:01:00Z".into();
    for (p, (n, e)) in outbox.pending.iter_mut().zip([(5, "old"), (2, "new")]) {
        p.attempts = n;
        p.last_error = Some(e.into());
        p.next_attempt_at = Some("2026-11-15T00:02:00Z".into());
    }
    let [f] = failing(Some(&outbox)).try_into().unwrap();
    assert_eq!(
        (f.pending, f.attempts, f.since.as_str(), f.error.as_str()),
        (2, 5, "2026-11-15T00:00:00Z", "old")
    );
    assert!(
        failing(Some(&recorded(
            &[alert("x", sns(), false)],
            "2026-11-15T00:00:00Z"
        )))
        .is_empty()
    );
}
