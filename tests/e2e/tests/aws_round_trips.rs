//! Every AWS SDK crate the product uses makes a round trip against the extended moto, with the
//! current SDK unchanged: Budgets (incl. UpdateBudget and subscribers, which moto lacks),
//! CloudWatch (RPC-v2 CBOR, which moto lacks), CloudWatch Logs, SNS and STS.

use aigov_e2e::{aws_config, unique};
use aws_sdk_budgets::types::{
    Budget, BudgetType, ComparisonOperator, Dimension as CostDimension, Expression,
    ExpressionDimensionValues, Notification, NotificationType, NotificationWithSubscribers,
    ResourceTag, Spend, Subscriber, SubscriptionType, ThresholdType, TimeUnit,
};
use aws_sdk_cloudwatch::types::{
    ComparisonOperator as AlarmComparison, Dimension, MetricDatum, StandardUnit, Statistic,
};

async fn account_id() -> String {
    let sts = aws_sdk_sts::Client::new(&aws_config().await);
    sts.get_caller_identity()
        .send()
        .await
        .unwrap()
        .account()
        .unwrap()
        .to_owned()
}

/// The cost filter every aigov budget carries: Amazon Bedrock only.
fn bedrock_only() -> Expression {
    let service = ExpressionDimensionValues::builder()
        .key(CostDimension::Service)
        .values("Amazon Bedrock")
        .build()
        .unwrap();
    Expression::builder().dimensions(service).build()
}

#[tokio::test]
async fn sts_reports_the_caller_account() {
    assert_eq!(account_id().await, "123456789012");
}

#[tokio::test]
async fn budgets_create_update_and_manage_subscribers() {
    let budgets = aws_sdk_budgets::Client::new(&aws_config().await);
    let account = account_id().await;
    let name = unique("bedrock-budget");
    let spend = |amount: &str| Spend::builder().amount(amount).unit("USD").build().unwrap();
    let budget = |amount: &str| {
        Budget::builder()
            .budget_name(&name)
            .budget_limit(spend(amount))
            .time_unit(TimeUnit::Monthly)
            .budget_type(BudgetType::Cost)
            .filter_expression(bedrock_only())
            .build()
            .unwrap()
    };
    let notification = Notification::builder()
        .notification_type(NotificationType::Actual)
        .comparison_operator(ComparisonOperator::GreaterThan)
        .threshold(80.0)
        .threshold_type(ThresholdType::Percentage)
        .build()
        .unwrap();
    let email = Subscriber::builder()
        .subscription_type(SubscriptionType::Email)
        .address("finops@example.com")
        .build()
        .unwrap();
    budgets
        .create_budget()
        .account_id(&account)
        .budget(budget("100"))
        .notifications_with_subscribers(
            NotificationWithSubscribers::builder()
                .notification(notification.clone())
                .subscribers(email)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    budgets
        .update_budget()
        .account_id(&account)
        .new_budget(budget("250"))
        .send()
        .await
        .unwrap();
    let described = budgets
        .describe_budget()
        .account_id(&account)
        .budget_name(&name)
        .send()
        .await
        .unwrap();
    let described = described.budget().unwrap();
    assert_eq!(described.budget_limit().unwrap().amount(), "250");
    assert_eq!(described.filter_expression(), Some(&bedrock_only()));

    let sns = Subscriber::builder()
        .subscription_type(SubscriptionType::Sns)
        .address("arn:aws:sns:us-east-1:123456789012:ai-spend")
        .build()
        .unwrap();
    budgets
        .create_subscriber()
        .account_id(&account)
        .budget_name(&name)
        .notification(notification.clone())
        .subscriber(sns.clone())
        .send()
        .await
        .unwrap();
    let subscribers = budgets
        .describe_subscribers_for_notification()
        .account_id(&account)
        .budget_name(&name)
        .notification(notification.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(subscribers.subscribers().len(), 2);
    budgets
        .delete_subscriber()
        .account_id(&account)
        .budget_name(&name)
        .notification(notification.clone())
        .subscriber(sns)
        .send()
        .await
        .unwrap();
    let subscribers = budgets
        .describe_subscribers_for_notification()
        .account_id(&account)
        .budget_name(&name)
        .notification(notification)
        .send()
        .await
        .unwrap();
    assert_eq!(subscribers.subscribers().len(), 1);

    budgets
        .delete_budget()
        .account_id(&account)
        .budget_name(&name)
        .send()
        .await
        .unwrap();
    let gone = budgets
        .describe_budget()
        .account_id(&account)
        .budget_name(&name)
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_not_found_exception());
}

#[tokio::test]
async fn budgets_update_notifications_and_subscribers_and_keep_tags() {
    let budgets = aws_sdk_budgets::Client::new(&aws_config().await);
    let account = account_id().await;
    let name = unique("tagged-budget");
    let arn = format!("arn:aws:budgets::{account}:budget/{name}");
    let tag = |k: &str, v: &str| ResourceTag::builder().key(k).value(v).build().unwrap();
    let at = |percent: f64| {
        Notification::builder()
            .notification_type(NotificationType::Actual)
            .comparison_operator(ComparisonOperator::GreaterThan)
            .threshold(percent)
            .threshold_type(ThresholdType::Percentage)
            .build()
            .unwrap()
    };
    let email = |address: &str| {
        Subscriber::builder()
            .subscription_type(SubscriptionType::Email)
            .address(address)
            .build()
            .unwrap()
    };
    let budget = Budget::builder()
        .budget_name(&name)
        .budget_limit(Spend::builder().amount("10").unit("USD").build().unwrap())
        .time_unit(TimeUnit::Daily)
        .budget_type(BudgetType::Cost)
        .filter_expression(bedrock_only())
        .build()
        .unwrap();
    budgets
        .create_budget()
        .account_id(&account)
        .budget(budget)
        .notifications_with_subscribers(
            NotificationWithSubscribers::builder()
                .notification(at(50.0))
                .subscribers(email("a@example.com"))
                .build()
                .unwrap(),
        )
        .resource_tags(tag("team", "chat"))
        .send()
        .await
        .unwrap();

    // Move the notification from 50% to 90%; its subscribers stay with it.
    budgets
        .update_notification()
        .account_id(&account)
        .budget_name(&name)
        .old_notification(at(50.0))
        .new_notification(at(90.0))
        .send()
        .await
        .unwrap();
    let notifications = budgets
        .describe_notifications_for_budget()
        .account_id(&account)
        .budget_name(&name)
        .send()
        .await
        .unwrap();
    let thresholds: Vec<f64> = notifications
        .notifications()
        .iter()
        .map(|n| n.threshold())
        .collect();
    assert_eq!(thresholds, [90.0]);

    budgets
        .update_subscriber()
        .account_id(&account)
        .budget_name(&name)
        .notification(at(90.0))
        .old_subscriber(email("a@example.com"))
        .new_subscriber(email("b@example.com"))
        .send()
        .await
        .unwrap();
    let subscribers = budgets
        .describe_subscribers_for_notification()
        .account_id(&account)
        .budget_name(&name)
        .notification(at(90.0))
        .send()
        .await
        .unwrap();
    let addresses: Vec<&str> = subscribers
        .subscribers()
        .iter()
        .map(|s| s.address())
        .collect();
    assert_eq!(addresses, ["b@example.com"]);
    let missing = budgets
        .describe_subscribers_for_notification()
        .account_id(&account)
        .budget_name(&name)
        .notification(at(50.0))
        .send()
        .await
        .unwrap_err();
    assert!(missing.into_service_error().is_not_found_exception());

    // Tags given at creation, then added and removed.
    let tags =
        |out: aws_sdk_budgets::operation::list_tags_for_resource::ListTagsForResourceOutput| {
            out.resource_tags()
                .iter()
                .map(|t| format!("{}={}", t.key(), t.value()))
                .collect::<Vec<_>>()
        };
    let listed = budgets
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags(listed), ["team=chat"]);
    budgets
        .tag_resource()
        .resource_arn(&arn)
        .resource_tags(tag("cost-center", "42"))
        .send()
        .await
        .unwrap();
    budgets
        .untag_resource()
        .resource_arn(&arn)
        .resource_tag_keys("team")
        .send()
        .await
        .unwrap();
    let listed = budgets
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags(listed), ["cost-center=42"]);

    budgets
        .delete_budget()
        .account_id(&account)
        .budget_name(&name)
        .send()
        .await
        .unwrap();
    let gone = budgets
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert!(gone.into_service_error().is_not_found_exception());
}

#[tokio::test]
async fn cloudwatch_alarms_and_metrics_round_trip_over_cbor() {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&aws_config().await);
    let alarm = unique("ai-spend");
    let budget = Dimension::builder()
        .name("Budget")
        .value("team-a/chat-monthly")
        .build();
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .namespace("AIGov")
        .metric_name("Spend")
        .dimensions(budget.clone())
        .statistic(Statistic::Sum)
        .period(300)
        .evaluation_periods(1)
        .threshold(200.0)
        .comparison_operator(AlarmComparison::GreaterThanOrEqualToThreshold)
        .alarm_actions("arn:aws:sns:us-east-1:123456789012:ai-spend")
        .send()
        .await
        .unwrap();
    let alarms = cloudwatch
        .describe_alarms()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    let found = &alarms.metric_alarms()[0];
    assert_eq!(found.threshold(), Some(200.0));
    assert_eq!(found.dimensions(), std::slice::from_ref(&budget));
    assert!(
        found.alarm_configuration_updated_timestamp().is_some(),
        "timestamps decode from CBOR"
    );

    cloudwatch
        .put_metric_data()
        .namespace("AIGov")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Spend")
                .dimensions(budget)
                .value(1.25)
                .unit(StandardUnit::None)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let metrics = cloudwatch
        .list_metrics()
        .namespace("AIGov")
        .metric_name("Spend")
        .send()
        .await
        .unwrap();
    assert!(metrics.metrics().iter().any(|m| {
        m.dimensions()
            .iter()
            .any(|d| d.value() == Some("team-a/chat-monthly"))
    }));

    cloudwatch
        .delete_alarms()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    assert!(
        cloudwatch
            .describe_alarms()
            .alarm_names(&alarm)
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty()
    );
}

#[tokio::test]
async fn cloudwatch_errors_arrive_as_the_sdks_typed_errors() {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&aws_config().await);
    let err = cloudwatch
        .set_alarm_state()
        .alarm_name(unique("missing"))
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found(), "{err:?}");
}

#[tokio::test]
async fn cloudwatch_logs_takes_a_group_retention_and_events() {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&aws_config().await);
    let group = format!("/aigov/{}", unique("usage"));
    logs.create_log_group()
        .log_group_name(&group)
        .tags("team", "platform")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name(&group)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("gateway-0")
        .send()
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("gateway-0")
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now)
                .message(r#"{"Spend":0.01}"#)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let events = logs
        .get_log_events()
        .log_group_name(&group)
        .log_stream_name("gateway-0")
        .send()
        .await
        .unwrap();
    assert_eq!(events.events()[0].message(), Some(r#"{"Spend":0.01}"#));
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix(&group)
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));
    logs.delete_log_group()
        .log_group_name(&group)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sns_topics_take_subscriptions_and_publishes() {
    let sns = aws_sdk_sns::Client::new(&aws_config().await);
    let topic = sns
        .create_topic()
        .name(unique("ai-spend"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    assert!(topic.starts_with("arn:aws:sns:us-east-1:123456789012:"));
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("email")
        .endpoint("oncall@example.com")
        .send()
        .await
        .unwrap();
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    assert_eq!(subscriptions.subscriptions().len(), 1);
    let published = sns
        .publish()
        .topic_arn(&topic)
        .subject("Budget at 80%")
        .message("team-a/chat-monthly at 80%")
        .send()
        .await
        .unwrap();
    assert!(published.message_id().is_some());
    sns.delete_topic().topic_arn(&topic).send().await.unwrap();
}
