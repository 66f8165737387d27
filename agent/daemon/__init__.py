"""`idp-agent daemon`: the scheduled jobs (sync, drift, sanctions, events, reviews), observable over HTTP."""
