"""Arm D1: the access review (snapshot + findings, and `report access` when it exists) against a plain brief
listing of all users, on one realm of N users x R roles.

    python -m benchmarks.review_bench --users 1000 --users 10000 --roles 20 --roles 200 [--out FILE.json]
        [--repeats 3]

Per (N, R): a fresh realm seeded with partialImport (R realm roles, every 10th a composite of the next two;
20 groups in two levels granting roles; each user in one or two groups, 10 % with a role mapped directly,
default roles given explicitly since partialImport does not). Each arm runs `--repeats` times; the median
counts; the snapshot's parts are also timed one by one, to show where Keycloak spends the time. The snapshot runs
twice: as the agent does (through the idp-agent plugin when the Keycloak has it, as the local stack's does)
and through the admin API only, for comparison.
`report access` (in-process, every format) logs in as any command must. It runs twice: as the admin (a password
grant, which Keycloak makes slow on purpose by hashing the password) and as a view-only reviewer account (client
credentials), the least-privilege way reports are meant to run. The admin's report is also set against the listing
made the same way (connect, log in, list).
Goals: D1 <= 2x the brief listing, time(10x users) <= 12x time(users).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import Unavailable
from agent.keycloak import KeycloakGateway
from agent.review.findings import findings
from agent.review.policy import ReviewPolicy, SodPolicy, SodRule, TrainingSpec
from agent.review.snapshot import SNAPSHOT_PAGE_SIZE, SNAPSHOT_WORKERS, take_snapshot
from agent.settings import KeycloakConnection
from benchmarks.common import (
    add_keycloak_db_option,
    keycloak_description,
    keycloak_for_benchmark,
    machine,
    median_of,
    peak_rss_mib,
    print_table,
    ratio,
    timed,
    write_results,
)

IMPORT_BATCH = 500
# Seeding and deleting a realm of 10k users are long single requests on a busy machine.
LONG_TIMEOUT_SECONDS = 900
GROUP_COUNT = 20
GOAL_OVER_LISTING = 2.0
WARM_ROUNDS = 2
GOAL_SCALING = 12.0
POLICY = ReviewPolicy(
    training=TrainingSpec(),
    sod=SodPolicy(rules=(SodRule(name="bench", realm_roles=("role-000", "role-001")),)),
)


def seed_realm(gateway: KeycloakGateway, realm: str, users: int, roles: int) -> None:
    """A realm of `users` x `roles`, made with partialImport (users) and the gateway (roles, groups)."""
    gateway.create_realm(realm)
    profile = gateway.get_user_profile(realm)
    gateway.update_user_profile(realm, replace(profile, unmanaged_attribute_policy="ENABLED"))
    names = [f"role-{index:03d}" for index in range(roles)]
    ids = {name: gateway.create_realm_role(realm, name) for name in names}
    by_name = {role.name: role for role in gateway.list_realm_roles(realm)}
    for index in range(0, roles - 2, 10):
        gateway.add_role_composites(realm, ids[names[index]], [by_name[names[index + 1]], by_name[names[index + 2]]])
    groups: list[str] = []
    for index in range(GROUP_COUNT // 2):
        parent = gateway.create_group(realm, f"dept-{index:02d}")
        child = gateway.create_group(realm, "team", parent)
        for offset, group_id in enumerate((parent, child)):
            role = by_name[names[(index * 2 + offset) % roles]]
            gateway.change_group_realm_roles(realm, group_id, [role], [])
        groups.extend((f"/dept-{index:02d}", f"/dept-{index:02d}/team"))
    default_role = f"default-roles-{realm}"
    trained = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    batch: list[dict[str, Any]] = []
    for index in range(users):
        batch.append(
            {
                "username": f"user{index:06d}",
                "enabled": True,
                "email": f"user{index:06d}@bench.example",
                "firstName": "Bench",
                "lastName": f"User {index}",
                "attributes": {"idp-agent.external-id": [f"E{index:06d}"], "training_date": [trained]},
                "groups": [groups[index % len(groups)], *([groups[(index * 7) % len(groups)]] if index % 2 else [])],
                "realmRoles": [default_role, *([names[index % roles]] if index % 10 == 0 else [])],
            }
        )
        if len(batch) == IMPORT_BATCH:
            gateway.import_users(realm, batch)
            batch = []
    if batch:
        gateway.import_users(realm, batch)


def interleaved(rounds: int, arms: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each arm once per round, in turn (A B C A B C ...), the median per arm. Keycloak speeds up as its
    caches and JIT warm: arms timed one after the other would give the later ones a warmer server."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    for _ in range(rounds):
        for name, action in arms.items():
            runs[name].append(action())
    return {name: median_of(found) for name, found in runs.items()}


def listing_arm(connection: KeycloakConnection, realm: str) -> dict[str, Any]:
    gateway = KeycloakGateway.connect(connection)
    try:
        gateway.tokens.access_token()  # the login is not part of this arm nor of the snapshot arms
        result = timed(lambda: sum(1 for _ in gateway.list_users(realm, brief=True, page_size=SNAPSHOT_PAGE_SIZE)))
        return {"seconds": result.seconds, "users": result.value, "requests": gateway.stats.requests}
    finally:
        gateway.close()


def listing_with_login_arm(connection: KeycloakConnection, realm: str) -> dict[str, Any]:
    """The listing as a command would make it, the way `report access` runs: connect, log in, list. The report's
    counterpart, since the report cannot leave out its own login."""

    def connect_and_list() -> int:
        gateway = KeycloakGateway.connect(connection)
        try:
            return sum(1 for _ in gateway.list_users(realm, brief=True, page_size=SNAPSHOT_PAGE_SIZE))
        finally:
            gateway.close()

    result = timed(connect_and_list)
    return {"seconds": result.seconds, "users": result.value}


def snapshot_arm(
    connection: KeycloakConnection, realm: str, workers: int = SNAPSHOT_WORKERS, *, use_plugin: bool = True
) -> dict[str, Any]:
    """A snapshot and its findings; `use_plugin` False reads through the admin API even where the plugin is."""
    gateway = KeycloakGateway.connect(connection).read_only()
    try:
        gateway.tokens.access_token()
        via_plugin = False

        def review() -> list[Any]:
            nonlocal via_plugin
            snapshot = take_snapshot(gateway, None, realm, policy=POLICY, workers=workers, use_plugin=use_plugin)
            via_plugin = snapshot.stats.via_plugin
            return findings(snapshot, POLICY)

        result = timed(review)
        return {
            "seconds": result.seconds,
            "findings": len(result.value),
            "requests": gateway.stats.requests,
            "via_plugin": via_plugin,
        }
    finally:
        gateway.close()


def parts_arm(connection: KeycloakConnection, realm: str) -> dict[str, float]:
    """Where a snapshot's Keycloak time goes, each part read one request at a time: the export, the full user
    listing, the default role's members (every user; the snapshot skips them while the default role grants
    only the baseline, as here), the other roles' members, the groups' members."""
    gateway = KeycloakGateway.connect(connection).read_only()
    default_role = f"default-roles-{realm}"
    try:
        gateway.tokens.access_token()
        exported = timed(lambda: gateway.export_access(realm))
        clients = {client.client_id: client.id for client in exported.value.clients}

        def members(roles: list[Any]) -> int:
            return sum(
                len(list(gateway.role_member_ids(realm, item.role.name, client_uuid=clients.get(item.client or ""))))
                for item in roles
            )

        others = [item for item in exported.value.roles if item.role.name != default_role]
        defaults = [item for item in exported.value.roles if item.role.name == default_role]
        plugin = timed(lambda: gateway.plugin_access(realm, skip_role_ids=[item.role.id for item in defaults]))
        return {
            "export": exported.seconds,
            "full_listing": timed(
                lambda: sum(1 for _ in gateway.list_users(realm, brief=False, page_size=1000))
            ).seconds,
            "default_role_members": timed(lambda: members(defaults)).seconds,
            "other_role_members": timed(lambda: members(others)).seconds,
            "group_members": timed(
                lambda: sum(len(list(gateway.group_member_ids(realm, group.id))) for group in exported.value.groups)
            ).seconds,
            # All of the above but the export, from the idp-agent plugin in one request (-1: not installed).
            "plugin_access": plugin.seconds if plugin.value is not None else -1.0,
        }
    finally:
        gateway.close()


def delete_realm(admin: KeycloakGateway, realm: str) -> None:
    """Delete the bench realm; a big realm's delete can fail once on a busy server (a 500), so try twice."""
    for attempt in range(2):
        try:
            if admin.get_realm(realm) is not None:
                admin.delete_realm(realm)
            return
        except Unavailable:
            if attempt:
                raise


REVIEWER_CLIENT = "bench-reviewer"
REVIEWER_ROLES = ("view-realm", "view-users", "view-clients")


def reviewer_account(gateway: KeycloakGateway, realm: str) -> dict[str, str | None]:
    """A least-privilege reviewer in `realm`: a confidential client whose service account holds only the
    realm-management view roles `report access` needs. The KEYCLOAK_* variables to log in as it (client
    credentials: no password hash to compute), the admin's unset."""
    secret = secrets.token_urlsafe(24)
    client_uuid = gateway.create_client(
        realm,
        {
            "clientId": REVIEWER_CLIENT, "publicClient": False, "serviceAccountsEnabled": True,
            "standardFlowEnabled": False, "directAccessGrantsEnabled": False, "secret": secret,
        },
    )  # fmt: skip
    account = gateway.service_account_user(realm, client_uuid)
    management = gateway.find_client(realm, "realm-management")
    assert account is not None and management is not None
    roles = [role for role in gateway.list_client_roles(realm, management.id) if role.name in REVIEWER_ROLES]
    gateway.add_client_roles_to_user(realm, account.id, management.id, roles)
    return {
        "KEYCLOAK_AUTH_REALM": realm,
        "KEYCLOAK_CLIENT_ID": REVIEWER_CLIENT,
        "KEYCLOAK_CLIENT_SECRET": secret,
        "KEYCLOAK_ADMIN_USER": None,
        "KEYCLOAK_ADMIN_PASSWORD": None,
        "KEYCLOAK_ADMIN_PASSWORD_FILE": None,
    }


def report_arm(realm: str, out: Path, env: dict[str, str | None] | None = None) -> dict[str, Any] | None:
    """`idp-agent report access` in-process with every format, or None when that command is not there; `env`
    changes KEYCLOAK_* for it (None unsets)."""
    try:
        from click.testing import CliRunner

        from agent.cli import cli
    except ImportError:
        return None
    if "report" not in cli.commands or "access" not in getattr(cli.commands["report"], "commands", {}):
        return None
    store = out / "store.db"
    config = out / "idp-agent.yaml"
    config.write_text(f"store: sqlite:///{store}\n", encoding="utf-8")
    args = ["report", "access", "--realm", realm, "--format", "html,csv,json,md", "--out", str(out / "report")]
    result = timed(lambda: CliRunner().invoke(cli, [*args, "--config", str(config)], env=env))
    if result.value.exit_code != 0:
        raise RuntimeError(f"report access failed: {result.value.output[-2000:]}")
    return {"seconds": result.seconds}


def run_size(connection: KeycloakConnection, users: int, roles: int, repeats: int) -> dict[str, Any]:
    realm = f"bench-review-{users}-{roles}-{uuid.uuid4().hex[:6]}"
    admin = KeycloakGateway.connect(replace(connection, timeout_seconds=LONG_TIMEOUT_SECONDS))
    try:
        seeding = timed(lambda: seed_realm(admin, realm, users, roles))
        print(f"[{realm}] seeded {users} users x {roles} roles in {seeding.seconds} s", flush=True)
        # Warm Keycloak for this realm before anything is timed, with every kind of read the arms make (the full
        # representation loads attributes and credentials that the brief listing never touches): one cold
        # round is not enough, later rounds still speed up.
        with tempfile.TemporaryDirectory() as folder:
            arms: dict[str, Callable[[], dict[str, Any]]] = {
                "listing": lambda: listing_arm(connection, realm),
                "snapshot": lambda: snapshot_arm(connection, realm),
                "snapshot_admin_api": lambda: snapshot_arm(connection, realm, use_plugin=False),
            }
            if os.environ.get("KEYCLOAK_URL"):  # the CLI finds Keycloak through KEYCLOAK_* only
                reviewer = reviewer_account(admin, realm)
                arms["report"] = lambda: report_arm(realm, Path(folder)) or {"seconds": -1.0}
                arms["report_reviewer"] = lambda: report_arm(realm, Path(folder), reviewer) or {"seconds": -1.0}
                arms["listing_with_login"] = lambda: listing_with_login_arm(connection, realm)
            interleaved(WARM_ROUNDS, arms)
            timed_arms = interleaved(repeats, arms)
        listing, review, by_api = timed_arms["listing"], timed_arms["snapshot"], timed_arms["snapshot_admin_api"]
        report = timed_arms.get("report")
        if report is not None and report["seconds"] < 0:
            report = None
        listing_with_login = timed_arms.get("listing_with_login")
        by_reviewer = timed_arms.get("report_reviewer")
        if by_reviewer is not None and by_reviewer["seconds"] < 0:
            by_reviewer = None
        # For comparison: the admin API's reads one at a time (how much the concurrent reads buy on this machine).
        sequential = snapshot_arm(connection, realm, workers=1, use_plugin=False)
        parts = parts_arm(connection, realm)
        assert listing["users"] == users, f"listing saw {listing['users']} users, expected {users}"
        return {
            "users": users,
            "roles": roles,
            "groups": GROUP_COUNT,
            "seed_seconds": seeding.seconds,
            "listing": listing,
            "snapshot_findings": review,
            "snapshot_findings_admin_api": by_api,
            "snapshot_findings_sequential": sequential,
            "snapshot_parts_sequential": parts,
            "report_access": report,
            "report_access_reviewer": by_reviewer,
            "listing_with_login": listing_with_login,
            "snapshot_over_listing": ratio(review["seconds"], listing["seconds"]),
            "admin_api_snapshot_over_listing": ratio(by_api["seconds"], listing["seconds"]),
            # The report with its login against the listing without one: the stricter, unlike-for-like ratio.
            "report_over_listing": ratio(report["seconds"], listing["seconds"]) if report else None,
            "report_over_listing_with_login": (
                ratio(report["seconds"], listing_with_login["seconds"]) if report and listing_with_login else None
            ),
            # The report as a view-only reviewer account makes it (its login included) against the listing.
            "reviewer_report_over_listing": ratio(by_reviewer["seconds"], listing["seconds"]) if by_reviewer else None,
        }
    finally:
        delete_realm(admin, realm)
        admin.close()


def scaling(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """time(10 N)/time(N) for each role count where both sizes ran."""
    found = []
    for small in results:
        for large in results:
            if large["roles"] == small["roles"] and large["users"] == 10 * small["users"] and large.get(key):
                found.append(
                    {
                        "roles": small["roles"],
                        "from_users": small["users"],
                        "to_users": large["users"],
                        "arm": key,
                        "ratio": ratio(large[key]["seconds"], small[key]["seconds"]),
                    }
                )
    return found


def within_goal(results: list[dict[str, Any]], key: str) -> bool:
    return all(result[key] is not None and result[key] <= GOAL_OVER_LISTING for result in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, action="append", help="users in the realm (repeatable; default 1000)")
    parser.add_argument("--roles", type=int, action="append", help="realm roles (repeatable; default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm; the median counts")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    add_keycloak_db_option(parser)
    args = parser.parse_args(argv)
    sizes = sorted(args.users or [1000])
    role_counts = sorted(args.roles or [20])
    where = keycloak_description(args.keycloak_db)
    with keycloak_for_benchmark(args.keycloak_db) as connection:
        version_gateway = KeycloakGateway.connect(connection)
        version = version_gateway.server_version()
        version_gateway.close()
        results = [run_size(connection, users, roles, args.repeats) for users in sizes for roles in role_counts]
    rows = []
    for result in results:
        report = result["report_access"]
        rows.append(
            {
                "users": result["users"],
                "roles": result["roles"],
                "listing_s": result["listing"]["seconds"],
                "listing_req": result["listing"]["requests"],
                "review_s": result["snapshot_findings"]["seconds"],
                "review_req": result["snapshot_findings"]["requests"],
                "review/listing": result["snapshot_over_listing"],
                "plugin": "yes" if result["snapshot_findings"]["via_plugin"] else "no",
                "api_s": result["snapshot_findings_admin_api"]["seconds"],
                "api/listing": result["admin_api_snapshot_over_listing"],
                "review_seq_s": result["snapshot_findings_sequential"]["seconds"],
                "report_s": report["seconds"] if report else "-",
                "report/listing": result["report_over_listing"] or "-",
                "login+listing_s": (result["listing_with_login"] or {}).get("seconds", "-"),
                "report/login+listing": result["report_over_listing_with_login"] or "-",
                "reviewer_report_s": (result["report_access_reviewer"] or {}).get("seconds", "-"),
                "reviewer_report/listing": result["reviewer_report_over_listing"] or "-",
            }
        )
    print_table(rows, list(rows[0]))
    for result in results:
        breakdown = ", ".join(f"{name} {seconds}" for name, seconds in result["snapshot_parts_sequential"].items())
        print(f"{result['users']} x {result['roles']}: {breakdown} (s, one request at a time)")
    scale = [
        item
        for arm in ("snapshot_findings", "report_access", "report_access_reviewer")
        for item in scaling(results, arm)
    ]
    for item in scale:
        span = f"time({item['to_users']})/time({item['from_users']})"
        print(f"{item['arm']} x{item['roles']} roles: {span} = {item['ratio']}")
    goals = f"<= {GOAL_OVER_LISTING}x listing, 10x users <= {GOAL_SCALING}x time"
    verdicts = {
        # The report as a reviewer account makes it, its login included, against the listing without a login.
        "report_access_reviewer": "reviewer_report_over_listing",
        # The same report logged in as the admin (a password grant: Keycloak hashes the password, ~0.07 s here),
        # against the listing made the same way, and against the listing without a login (unlike for like).
        "report_access": "report_over_listing_with_login",
        "report_access (vs the listing without a login)": "report_over_listing",
        "snapshot_findings": "snapshot_over_listing",
    }
    met: dict[str, bool] = {}
    for name, key in verdicts.items():
        arm = name.split(" ")[0]
        if all(result[arm] for result in results):
            met[name] = within_goal(results, key) and all(
                item["ratio"] is not None and item["ratio"] <= GOAL_SCALING for item in scale if item["arm"] == arm
            )
            print(f"D1 {name}, {key}: {goals}; met: {met[name]}")
    timed_arm = next(iter(met))
    goal_met = met[timed_arm]
    write_results(
        args.out,
        {
            "benchmark": "review_bench",
            "keycloak_version": version,
            "keycloak": where,
            "machine": machine(),
            "page_size": SNAPSHOT_PAGE_SIZE,
            "snapshot_workers": SNAPSHOT_WORKERS,
            "repeats": args.repeats,
            "results": results,
            "scaling": scale,
            "timed_arm": timed_arm,
            "goals": {"over_listing_max": GOAL_OVER_LISTING, "ten_x_users_max": GOAL_SCALING},
            "goal_met": goal_met,
            "goal_met_by_arm": met,
            "peak_rss_mib": peak_rss_mib(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
