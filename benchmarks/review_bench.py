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
Goals: D1 <= 2x the brief listing, time(10x users) <= 12x time(users).
"""

from __future__ import annotations

import argparse
import os
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
from benchmarks.common import keycloak_for_benchmark, machine, peak_rss_mib, print_table, ratio, timed, write_results

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


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [run["seconds"] for run in runs]}


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
        gateway.tokens.access_token()  # the login is not part of either arm
        result = timed(lambda: sum(1 for _ in gateway.list_users(realm, brief=True, page_size=SNAPSHOT_PAGE_SIZE)))
        return {"seconds": result.seconds, "users": result.value, "requests": gateway.stats.requests}
    finally:
        gateway.close()


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


def report_arm(realm: str, out: Path) -> dict[str, Any] | None:
    """`idp-agent report access` in-process with every format, or None when that command is not there."""
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
    result = timed(lambda: CliRunner().invoke(cli, [*args, "--config", str(config)]))
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
                arms["report"] = lambda: report_arm(realm, Path(folder)) or {"seconds": -1.0}
            interleaved(WARM_ROUNDS, arms)
            timed_arms = interleaved(repeats, arms)
        listing, review, by_api = timed_arms["listing"], timed_arms["snapshot"], timed_arms["snapshot_admin_api"]
        report = timed_arms.get("report")
        if report is not None and report["seconds"] < 0:
            report = None
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
            "snapshot_over_listing": ratio(review["seconds"], listing["seconds"]),
            "admin_api_snapshot_over_listing": ratio(by_api["seconds"], listing["seconds"]),
            "report_over_listing": ratio(report["seconds"], listing["seconds"]) if report else None,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, action="append", help="users in the realm (repeatable; default 1000)")
    parser.add_argument("--roles", type=int, action="append", help="realm roles (repeatable; default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm; the median counts")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    sizes = sorted(args.users or [1000])
    role_counts = sorted(args.roles or [20])
    with keycloak_for_benchmark() as connection:
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
            }
        )
    print_table(rows, list(rows[0]))
    for result in results:
        breakdown = ", ".join(f"{name} {seconds}" for name, seconds in result["snapshot_parts_sequential"].items())
        print(f"{result['users']} x {result['roles']}: {breakdown} (s, one request at a time)")
    scale = scaling(results, "snapshot_findings") + scaling(results, "report_access")
    for item in scale:
        span = f"time({item['to_users']})/time({item['from_users']})"
        print(f"{item['arm']} x{item['roles']} roles: {span} = {item['ratio']}")
    timed_arm = "report_access" if all(result["report_access"] for result in results) else "snapshot_findings"
    over = [
        result["report_over_listing" if timed_arm == "report_access" else "snapshot_over_listing"] for result in results
    ]
    goal_met = all(value is not None and value <= GOAL_OVER_LISTING for value in over) and all(
        item["ratio"] is not None and item["ratio"] <= GOAL_SCALING for item in scale if item["arm"] == timed_arm
    )
    goals = f"<= {GOAL_OVER_LISTING}x listing, 10x users <= {GOAL_SCALING}x time"
    print(f"D1 timed arm: {timed_arm}; goals: {goals}; met: {goal_met}")
    write_results(
        args.out,
        {
            "benchmark": "review_bench",
            "keycloak_version": version,
            "machine": machine(),
            "page_size": SNAPSHOT_PAGE_SIZE,
            "snapshot_workers": SNAPSHOT_WORKERS,
            "repeats": args.repeats,
            "results": results,
            "scaling": scale,
            "timed_arm": timed_arm,
            "goals": {"over_listing_max": GOAL_OVER_LISTING, "ten_x_users_max": GOAL_SCALING},
            "goal_met": goal_met,
            "peak_rss_mib": peak_rss_mib(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
