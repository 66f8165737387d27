"""Cross-references inside one realm spec: every role, group and client named must exist, no cycles.

Only what the config itself manages can be checked before calling Keycloak: a realm role referenced
while `roles:` is not written at all is taken on trust (it may exist live), and the plan verifies it.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent.config.source import ConfigPath
from agent.keycloak.models import default_role_name
from agent.realm.kinds.base import BUILT_IN_CLIENTS, BUILT_IN_ROLES
from agent.realm.kinds.client_scopes import KEYCLOAK_CLIENT_SCOPES
from agent.realm.kinds.realm_settings import desired_fields
from agent.realm.spec import CompositesSpec, RealmSpec

Problem = tuple[ConfigPath, str, str]


def _realm_role_names(spec: RealmSpec) -> set[str] | None:
    if spec.roles is None:
        return None
    return {role.name for role in spec.roles} | set(BUILT_IN_ROLES) | {default_role_name(spec.realm)}


def _client_role_names(spec: RealmSpec) -> dict[str, set[str] | None]:
    """Known roles per client written in config; None means 'roles not managed, trust it'."""
    known: dict[str, set[str] | None] = dict.fromkeys(BUILT_IN_CLIENTS)
    for client in spec.clients or ():
        known[client.client_id] = None if client.roles is None else {role.name for role in client.roles}
    return known


def _check_realm_role(name: str, path: ConfigPath, known: set[str] | None, who: str) -> Iterator[Problem]:
    if known is not None and name not in known:
        yield (path, f"{who} grants unknown realm role '{name}'", "add it under `roles:` or fix the name")


def _check_client_roles(
    client_roles: dict[str, tuple[str, ...]], path: ConfigPath, spec: RealmSpec, who: str
) -> Iterator[Problem]:
    known = _client_role_names(spec)
    for client_id, names in client_roles.items():
        if client_id not in known and spec.clients is not None:
            yield ((*path, client_id), f"{who} names unknown client '{client_id}'", "add it under `clients:`")
            continue
        roles = known.get(client_id)
        for index, name in enumerate(names):
            if roles is not None and name not in roles:
                yield (
                    (*path, client_id, index),
                    f"{who} grants unknown client role '{client_id}/{name}'",
                    f"add it to the roles of client '{client_id}'",
                )


def _check_composites(
    composites: CompositesSpec, path: ConfigPath, spec: RealmSpec, known: set[str] | None, who: str
) -> Iterator[Problem]:
    for index, name in enumerate(composites.realm):
        yield from _check_realm_role(name, (*path, "realm", index), known, who)
    yield from _check_client_roles(composites.clients, (*path, "clients"), spec, who)


def _composite_cycles(spec: RealmSpec) -> Iterator[Problem]:
    graph = {role.name: set(role.composites.realm) if role.composites else set() for role in spec.roles or ()}
    index_of = {role.name: index for index, role in enumerate(spec.roles or ())}
    reported: set[frozenset[str]] = set()
    for start in graph:
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        while stack:
            node, trail = stack.pop()
            for member in graph.get(node, ()):
                if member == start:
                    cycle = frozenset(trail)
                    if cycle not in reported:
                        reported.add(cycle)
                        shown = " -> ".join((*trail, start))
                        yield (
                            ("roles", index_of[start], "composites"),
                            f"composite roles form a cycle: {shown}",
                            "a role cannot contain itself, directly or through others",
                        )
                elif member not in trail and member in graph:
                    stack.append((member, (*trail, member)))


def _role_problems(spec: RealmSpec, realm_roles: set[str] | None) -> Iterator[Problem]:
    for index, role in enumerate(spec.roles or ()):
        if role.composites:
            who = f"role '{role.name}'"
            yield from _check_composites(role.composites, ("roles", index, "composites"), spec, realm_roles, who)
    yield from _composite_cycles(spec)


def _group_problems(spec: RealmSpec, realm_roles: set[str] | None) -> Iterator[Problem]:
    for index, group in enumerate(spec.groups or ()):
        who = f"group '{group.path}'"
        for role_index, name in enumerate(group.realm_roles or ()):
            yield from _check_realm_role(name, ("groups", index, "realm_roles", role_index), realm_roles, who)
        yield from _check_client_roles(group.client_roles or {}, ("groups", index, "client_roles"), spec, who)


def _default_problems(spec: RealmSpec, realm_roles: set[str] | None, group_paths: set[str] | None) -> Iterator[Problem]:
    for index, text in enumerate(spec.default_roles or ()):
        client, slash, name = text.partition("/")
        if slash:
            yield from _check_client_roles({client: (name,)}, ("default_roles", index), spec, "default_roles")
        else:
            yield from _check_realm_role(text, ("default_roles", index), realm_roles, "default_roles")
    for index, path in enumerate(spec.default_groups or ()):
        if group_paths is not None and path not in group_paths:
            yield (("default_groups", index), f"default group '{path}' is not under `groups:`", "")


def _mfa_problems(spec: RealmSpec, realm_roles: set[str] | None, group_paths: set[str] | None) -> Iterator[Problem]:
    if spec.mfa is None:
        return
    for index, name in enumerate(spec.mfa.otp_for_roles):
        yield from _check_realm_role(name, ("mfa", "otp_for_roles", index), realm_roles, "mfa")
    for index, path in enumerate(spec.mfa.otp_for_groups):
        if group_paths is not None and path not in group_paths:
            yield (("mfa", "otp_for_groups", index), f"mfa names unknown group '{path}'", "")


def _client_problems(spec: RealmSpec, realm_roles: set[str] | None) -> Iterator[Problem]:
    for index, client in enumerate(spec.clients or ()):
        if client.service_account_roles is not None:
            who = f"service account of '{client.client_id}'"
            where: ConfigPath = ("clients", index, "service_account_roles")
            yield from _check_composites(client.service_account_roles, where, spec, realm_roles, who)


def check_references(spec: RealmSpec) -> list[Problem]:
    """Every dangling reference and composite cycle in `spec`, with the config path it was written at."""
    realm_roles = _realm_role_names(spec)
    group_paths = None if spec.groups is None else {group.path for group in spec.groups}
    return [
        *_role_problems(spec, realm_roles),
        *_group_problems(spec, realm_roles),
        *_default_problems(spec, realm_roles, group_paths),
        *_mfa_problems(spec, realm_roles, group_paths),
        *_client_problems(spec, realm_roles),
        *_client_scope_link_problems(spec),
        *_client_role_composite_problems(spec, realm_roles),
        *_terms_problems(spec),
        *_mfa_group_role_problems(spec),
        *_keycloak_overlap_problems(spec),
    ]


def _keycloak_overlap_problems(spec: RealmSpec) -> Iterator[Problem]:
    """A key under `keycloak:` that a written setting also sets: one would silently win over the other."""
    if not spec.keycloak:
        return
    friendly = spec.model_copy(
        update={
            "keycloak": None,
            # An unknown preset is reported on its own; the other settings are still compared.
            "password_policy": None if isinstance(spec.password_policy, str) else spec.password_policy,
            "lockout": None if isinstance(spec.lockout, str) else spec.lockout,
        }
    )
    for key in sorted(set(spec.keycloak) & set(desired_fields(friendly))):
        message = f"keycloak: {key} is also set by a setting written above; one would silently win"
        yield (("keycloak", key), message, "write it once: drop it here, or drop the setting")


def _client_scope_link_problems(spec: RealmSpec) -> Iterator[Problem]:
    """With `client_scopes:` written, a client's default and optional scopes must be built-in or written."""
    if spec.client_scopes is None:
        return
    known = KEYCLOAK_CLIENT_SCOPES | {scope.name for scope in spec.client_scopes}
    for index, client in enumerate(spec.clients or ()):
        for key in ("default_client_scopes", "optional_client_scopes"):
            for scope_index, name in enumerate(getattr(client, key) or ()):
                if name not in known:
                    yield (
                        ("clients", index, key, scope_index),
                        f"client '{client.client_id}' names unknown client scope '{name}'",
                        "add it under `client_scopes:` or fix the name",
                    )


def _client_role_composite_problems(spec: RealmSpec, realm_roles: set[str] | None) -> Iterator[Problem]:
    for index, client in enumerate(spec.clients or ()):
        for role_index, role in enumerate(client.roles or ()):
            if role.composites:
                who = f"client role '{client.client_id}/{role.name}'"
                where: ConfigPath = ("clients", index, "roles", role_index, "composites")
                yield from _check_composites(role.composites, where, spec, realm_roles, who)


def _terms_problems(spec: RealmSpec) -> Iterator[Problem]:
    """`terms:` manages TERMS_AND_CONDITIONS; a `required_actions:` entry may not contradict it."""
    if spec.terms is None:
        return
    for index, action in enumerate(spec.required_actions or ()):
        if action.alias != "TERMS_AND_CONDITIONS":
            continue
        for key in ("enabled", "default_action"):
            value = getattr(action, key)
            if value is not None and value != spec.terms.required:
                yield (
                    ("required_actions", index, key),
                    f"TERMS_AND_CONDITIONS {key} is {str(value).lower()} here but `terms.required` says "
                    f"{str(spec.terms.required).lower()}",
                    "leave it to `terms:` (remove the key), or change terms.required",
                )


def _mfa_group_role_problems(spec: RealmSpec) -> Iterator[Problem]:
    """Groups in mfa.otp_for_groups are granted `mfa.group_role`, a role the agent owns alone."""
    if spec.mfa is None or not spec.mfa.otp_for_groups:
        return
    role = spec.mfa.group_role
    # Group grants leave this marker role alone (kinds/groups.py), so MFA groups may grant roles too.
    if role in {r.name for r in spec.roles or ()}:
        yield (
            ("mfa", "group_role"),
            f"the MFA group role '{role}' is created by the agent",
            "do not list it under `roles:`",
        )
    elif spec.managed.realm_roles == "full" and spec.roles is not None:
        yield (
            ("mfa", "otp_for_groups"),
            f"with managed.realm_roles: full, the MFA group role '{role}' would be deleted on every run",
            "grant these groups a role listed in mfa.otp_for_roles instead",
        )
