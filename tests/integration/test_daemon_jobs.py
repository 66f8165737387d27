"""`idp-agent daemon` as a real process with fast schedules against the shared Keycloak: every job runs,
metrics and health answer over HTTP, alerts reach a webhook, an edited config is picked up, SIGTERM exits 0."""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.keycloak import KeycloakGateway
from agent.settings import KeycloakConnection
from agent.store.db import open_store
from tests.harness.daemon_process import DaemonProcess, add_daemon_section, wait_for
from tests.harness.smtp_server import smtp_server
from tests.harness.sync_setup import SYNC, SyncSetup, hr_config, hr_row, make_sync_setup, managed
from tests.harness.webhook import WebhookReceiver
from tests.integration.test_realm_cli import cli_env

OTHER_JOBS = ("sanctions", "events", "reviews", "retention")


@pytest.fixture
def setup(keycloak_connection: KeycloakConnection, realm: str, tmp_path: Path) -> SyncSetup:
    return make_sync_setup(keycloak_connection, realm, tmp_path)


def write_realm_config(setup: SyncSetup, extra_groups: list[str]) -> Path:
    """The realm as the sync harness made it, plus groups Keycloak does not have yet (drift)."""
    folder = setup.folder / "realm-config"
    folder.mkdir(exist_ok=True)
    spec = {
        "realm": setup.realm,
        "groups": [{"path": path} for path in ["/staff", "/finance", *extra_groups]],
        "user_profile": {"unmanaged_attributes": "admin_edit"},
        "registration": {"edit_username": True},
    }
    (folder / "realm.yaml").write_text(yaml.safe_dump(spec))
    return folder


def daemon_section(setup: SyncSetup, webhook: str, *, apply: bool) -> dict[str, Any]:
    return {
        "jobs": [
            {"job": "sync", "every": "2s"},
            {"job": "drift", "every": "2s", "paths": ["realm-config"], "policies": "policies", "apply": apply},
            *({"job": name, "every": "2s", "realm": setup.realm} for name in OTHER_JOBS),
        ],
        "alerts": {"webhook": "${env:TEST_ALERT_WEBHOOK}"},
    }


def events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [record for record in daemon.log_records() if record.get("event") == name]


def test_daemon_runs_each_job_and_exposes_metrics(
    setup: SyncSetup, keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    config = hr_config(setup, [hr_row(i) for i in range(4)])
    write_realm_config(setup, ["/drifted"])
    (setup.folder / "policies").symlink_to(Path(__file__).resolve().parents[2] / "policies")
    config_file = setup.folder / "idp-agent.yaml"
    with WebhookReceiver() as hook:
        add_daemon_section(config_file, daemon_section(setup, hook.url, apply=False))
        env = cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=str(setup.folder / "state"), TEST_ALERT_WEBHOOK=hook.url)
        with DaemonProcess(config_file, env) as daemon:
            assert daemon.get("/healthz").json() == {"status": "ok"}
            ready = daemon.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert {check["name"] for check in ready.json()["checks"]} == {"keycloak", "source:hr"}

            wait_for("a successful sync run", lambda: daemon.runs(f"sync:{SYNC}", "succeeded") >= 1)
            assert len(managed(gateway, setup.realm)) == 4
            wait_for("a drift found", lambda: daemon.runs("drift", "drift") >= 1)
            wait_for("a drift alert", lambda: [a for a in hook.received() if a["reason"] == "drift"])
            for job in (f"{name}:{setup.realm}" for name in OTHER_JOBS):
                wait_for(f"a run of {job}", partial(daemon.ran, job))

            text = daemon.get("/metrics").text
            metrics = daemon.metrics()
            assert 'idp_agent_drift_changes{job="drift"} 1' in text
            assert metrics[f'idp_agent_job_last_success_timestamp_seconds{{job="sync:{SYNC}"}}'] > 0
            assert metrics[f'idp_agent_job_duration_seconds_count{{job="sync:{SYNC}"}}'] >= 1
            assert metrics[f'idp_agent_job_changes_total{{job="sync:{SYNC}"}}'] >= 4
            assert gateway.find_group_by_path(setup.realm, "/drifted") is None  # alert only

            # An edited config is picked up without a restart: drift is now applied.
            add_daemon_section(config_file, daemon_section(setup, hook.url, apply=True))
            wait_for("the drift applied", lambda: gateway.find_group_by_path(setup.realm, "/drifted") is not None)
            wait_for("no drift left", lambda: 'idp_agent_drift_changes{job="drift"} 0' in daemon.get("/metrics").text)

            # SIGHUP reloads too; a broken config is reported and the running schedule kept.
            daemon.signal(signal.SIGHUP)
            wait_for("a reload on SIGHUP", lambda: len(events(daemon, "reload")) >= 2)
            good = config_file.read_text()
            config_file.write_text(good + "daemon: {jobs: [{job: sync, every: 2s, cron: '* * * * *'}]}\n")
            wait_for("the broken config reported", lambda: events(daemon, "reload_failed"))
            assert "idp-agent.yaml" in events(daemon, "reload_failed")[0]["msg"]
            runs = daemon.runs(f"sync:{SYNC}", "succeeded")
            wait_for("runs going on", lambda: daemon.runs(f"sync:{SYNC}", "succeeded") > runs)
            config_file.write_text(good)

            records = daemon.log_records()
            assert daemon.stop() == 0

    assert not [r for r in records if r.get("event") == "run_crashed"], records
    finished = [r for r in records if r.get("event") == "run_finished"]
    assert all(r["run_id"] and r["job"] for r in finished)
    outcomes = {name: {r["outcome"] for r in finished if r["job"] == f"{name}:{setup.realm}"} for name in OTHER_JOBS}
    assert outcomes == {
        "sanctions": {"succeeded"}, "events": {"succeeded"}, "reviews": {"succeeded"}, "retention": {"succeeded"},
    }  # fmt: skip
    # Store retention ran (nothing is old enough to go in a fresh store) and left the journal whole.
    assert any("retention deleted" in r["msg"] for r in finished if r["job"] == f"retention:{setup.realm}")
    assert keycloak_connection.password is not None
    assert keycloak_connection.password.reveal() not in daemon.log_text()
    with open_store(config.store) as store:
        assert store.journal.verify().ok
        assert any(entry.action == "realm.create" for entry in store.journal.entries())
        (campaign,) = store.campaigns.all()  # one per realm and day, however often the job ran
        assert campaign.realm == setup.realm
    assert list((setup.folder / "state" / "backups" / setup.realm).iterdir()), "a realm export before applying"
    assert any(r.get("event") == "reload" for r in records)


def test_staged_removals_and_failures_raise_alerts_by_webhook_and_mail(
    setup: SyncSetup, keycloak_connection: KeycloakConnection, gateway: KeycloakGateway
) -> None:
    setup.run(hr_config(setup, [hr_row(i) for i in range(10)]))
    # Eight of ten leave at once: above the brake (max_removals 5), so the run stages and applies nothing
    # (the shrink brake, which would stop the run instead, is let through).
    hr_config(setup, [hr_row(i) for i in range(2)], max_removals=5, max_shrink_ratio=1.0)
    config_file = setup.folder / "idp-agent.yaml"
    with WebhookReceiver() as hook, smtp_server() as (port, mailbox):
        data = yaml.safe_load(config_file.read_text())
        data["smtp"] = {"host": "127.0.0.1", "port": port, "from": "idp-agent@example.org", "starttls": False}
        data["daemon"] = {
            "jobs": [
                {"job": "sync", "every": "1h"},
                {"job": "drift", "every": "1h", "paths": ["broken-realms"]},  # fails: an error to alert on
            ],
            "alerts": {"webhook": "${env:TEST_ALERT_WEBHOOK}", "email": ["iam-oncall@example.org"]},
        }
        config_file.write_text(yaml.safe_dump(data))
        (setup.folder / "broken-realms").mkdir()
        (setup.folder / "broken-realms" / "broken.yaml").write_text("realm: acme\nroles: not-a-list\n")
        env = cli_env(keycloak_connection, IDP_AGENT_STATE_DIR=str(setup.folder / "state"), TEST_ALERT_WEBHOOK=hook.url)
        with DaemonProcess(config_file, env) as daemon:
            wait_for("the staged run", lambda: daemon.runs(f"sync:{SYNC}", "staged") == 1)
            wait_for("the failed drift check", lambda: daemon.runs("drift", "failed") == 1)
            wait_for("two alerts posted", lambda: len(hook.received()) == 2)
            wait_for("two alerts mailed", lambda: len(mailbox.messages) == 2)
            metrics = daemon.metrics()
            assert daemon.stop() == 0

    assert metrics[f'idp_agent_job_staged_removals_total{{job="sync:{SYNC}"}}'] == 8
    assert metrics['idp_agent_job_failures_total{job="drift"}'] == 1
    alerts = {alert["reason"]: alert for alert in hook.received()}
    assert set(alerts) == {"staged", "failure"}
    assert "idp-agent sync approve" in alerts["staged"]["summary"]
    assert alerts["failure"]["job"] == "drift" and "broken.yaml" in alerts["failure"]["summary"]
    subjects = sorted(str(message["Subject"]) for message in mailbox.messages)
    assert subjects == ["[idp-agent] failure: drift", f"[idp-agent] staged: sync:{SYNC}"]
    assert all(recipients == ["iam-oncall@example.org"] for recipients in mailbox.recipients)
    assert len(managed(gateway, setup.realm)) == 10 and all(u.enabled for u in managed(gateway, setup.realm).values())
