"""Reports for auditors: the controls matrix (`controls`) and the access report (`access`), each a pure function of
values to text (Markdown, JSON, HTML, CSV); only `controls_live` and the commands read Keycloak or files."""
