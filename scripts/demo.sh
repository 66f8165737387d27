#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Starts the local Keycloak + OpenLDAP, applies every
# realm in realm-config/ and shows that a second plan is empty. Safe to run again: it converges.
set -euo pipefail
cd "$(dirname "$0")/.."
agent=.venv/bin/idp-agent

step() { printf '\n== %s\n' "$*"; }

step "Starting the local stack (Keycloak + OpenLDAP on 127.0.0.1)"
$agent stack up
eval "$($agent stack env)"

# Demo-only secrets, generated once and kept in the state dir (mode 0600), never in the repository.
state=$(.venv/bin/python -c 'from agent.paths import state_dir; print(state_dir())')
secrets="$state/demo-secrets"
mkdir -p "$secrets" && chmod 700 "$secrets"
[[ -s $secrets/intranet ]] || (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))' > "$secrets/intranet")
WORKFORCE_INTRANET_SECRET=$(cat "$secrets/intranet")
export WORKFORCE_INTRANET_SECRET

step "Validating realm-config/ (errors would be listed as file:line:col, before any call to Keycloak)"
$agent validate

step "Plan (what apply would change)"
set +e; $agent plan; code=$?; set -e
[[ $code == 0 || $code == 2 ]] || exit "$code"

step "Apply"
$agent apply

step "Second plan: must be empty"
$agent plan

step "Identity sync plan: HR CSV (mappers/demo/hr.csv) + the demo LDAP directory -> realm workforce"
set +e; $agent sync plan; code=$?; set -e
[[ $code == 0 || $code == 2 ]] || exit "$code"

step "Identity sync run"
set +e; $agent sync run > /dev/null; code=$?; set -e
[[ $code == 0 ]] || { echo "sync run ended with exit $code"; exit "$code"; }
run_id=$($agent sync runs --limit 1 | awk '{print $1}')

step "The run's journal ($agent sync show $run_id)"
$agent sync show "$run_id"

step "Why a person has their groups ($agent sync explain acarter)"
$agent sync explain acarter

step "Second sync plan: nothing left to do"
$agent sync plan

step "Sanctions (policies/sanctions.yaml): a warning for dokafor, a 7-day suspension for hsato, enforced and verified"
# Issued once: a re-run finds them open and leaves them (three warnings would escalate to a restriction).
[[ $($agent sanction list --active --user dokafor --json) != "[]" ]] ||
  $agent sanction issue dokafor --level warning --reason spam --note "demo: posted the same link 40 times"
[[ $($agent sanction list --active --user hsato --json) != "[]" ]] ||
  $agent sanction issue hsato --level suspension --reason policy-breach --for 7d --note "demo: shared the account"

step "The sanction ledger ($agent sanction list) and one enforcement pass (the daemon runs it on a schedule)"
$agent sanction list
$agent sanctions enforce

step "Appeals: hsato appeals the suspension; each appeal shows its next deadline, overdue ones flagged"
suspension=$($agent sanction list --active --user hsato --json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
# Opened once: a re-run finds the undecided appeal and leaves it.
appeals=$($agent appeal list --json)
[[ $appeals == *"\"sanction_id\": \"$suspension\""* ]] ||
  $agent appeal open "$suspension" --text "demo: I did not share my password" --actor hsato
$agent appeal list

step "The journal of every write is intact ($agent audit verify; keep the anchor it prints elsewhere)"
$agent audit verify

step "Reports for auditors: the access review and the compliance controls of realm workforce"
reports="$state/reports"
$agent events harvest --realm workforce   # last logins come from harvested LOGIN events
$agent report access --realm workforce --format html,csv,json,md --out "$reports"
$agent report controls --realm workforce --format html,json,md --out "$reports"
echo "Access report:   $reports/access.html"
echo "Controls report: $reports/controls.html"

step "The daemon for a moment: the jobs of idp-agent.yaml that are due run once, then its metrics"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$agent daemon --listen "127.0.0.1:$port" 2> "$state/daemon-demo.log" &
daemon_pid=$!
# Bounded wait: every due run has finished (none in progress, every next run in the future).
.venv/bin/python - "$port" <<'PY'
import sys, time, urllib.request

url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
deadline, text = time.monotonic() + 180, ""
while time.monotonic() < deadline:
    time.sleep(1)
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        continue
    values = {line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in text.splitlines() if line[:1] != "#"}
    next_runs = [v for k, v in values.items() if k.startswith("idp_agent_job_next_run_timestamp_seconds")]
    if values.get("idp_agent_runs_in_progress") == 0 and next_runs and min(next_runs) > time.time():
        break
wanted = ("idp_agent_job_runs_total", "idp_agent_job_changes_total", "idp_agent_job_last_success", "idp_agent_drift")
print("\n".join(line for line in text.splitlines() if line.startswith(wanted)))
PY
kill -TERM "$daemon_pid"
wait "$daemon_pid" && echo "daemon stopped cleanly (SIGTERM, exit 0); its JSON log: $state/daemon-demo.log"

step "Where things are"
$agent stack status
echo
echo "Log in to the admin console with the credentials from: $agent stack env"
