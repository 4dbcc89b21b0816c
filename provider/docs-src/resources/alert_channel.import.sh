terraform import aigov_alert_channel.finops arn:aws:sns:us-east-1:123456789012:aigov-finops
