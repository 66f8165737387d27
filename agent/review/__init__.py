"""Access reviews: a read-only snapshot of a realm (`model`, `snapshot`), findings drawn from it (`findings`),
LOGIN events kept in the store for last-login (`events`); reports and campaigns build on these."""
