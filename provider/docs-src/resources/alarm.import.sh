terraform import aigov_alarm.research_spend team-research-hourly-spend
