"""A realm ready for sanction scenarios (roles, groups, two clients with token mappers for the sanction
attributes), a user who can log in, and the token endpoint used as that user would (real tokens)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from agent.keycloak import KeycloakGateway, UserDraft
from agent.sanctions.context import SanctionContext
from agent.sanctions.policy import SanctionPolicy, load_sanction_policy
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from agent.store import ManualClock
from agent.store.db import Store
from tests.harness.realm_steps import apply_spec, spec_of

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "sanctions.yaml"
PASSWORD = "Sanction-test-1!"
CLIENTS = ("app", "mobile")
TIMEOUT_SECONDS = 30


def sanction_policy() -> SanctionPolicy:
    return load_sanction_policy(POLICY_FILE, {})


def _client(client_id: str) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "public": True,
        "direct_access_grants": True,
        "standard_flow": False,
        "protocol_mappers": [
            {"name": "sanction level", "user_attribute": "sanction_level", "claim": "sanction_level"},
            {"name": "restrictions", "user_attribute": "restrictions", "claim": "restrictions", "multivalued": True},
        ],
    }


def prepare_realm(connection: KeycloakConnection, realm: str) -> None:
    apply_spec(
        connection,
        spec_of(
            {
                "realm": realm,
                "roles": [{"name": "user"}, {"name": "premium"}],
                "groups": [{"path": "/members"}, {"path": "/premium"}, {"path": "/restricted"}],
                "user_profile": {"unmanaged_attributes": "admin_edit"},
                "clients": [_client(client_id) for client_id in CLIENTS],
            }
        ),
    )


def make_member(gateway: KeycloakGateway, realm: str, username: str) -> str:
    """A user with roles user+premium and groups /members+/premium who can log in with PASSWORD."""
    draft = UserDraft(
        username=username, email=f"{username}@example.org", first_name=username.title(), last_name="Member",
        email_verified=True,
    )  # fmt: skip
    user_id = gateway.create_user(realm, draft)
    gateway.set_password(realm, user_id, Secret(PASSWORD))
    roles = [gateway.get_realm_role(realm, name) for name in ("user", "premium")]
    gateway.add_realm_roles_to_user(realm, user_id, [role for role in roles if role is not None])
    for path in ("/members", "/premium"):
        group = gateway.find_group_by_path(realm, path)
        assert group is not None
        gateway.add_user_to_group(realm, user_id, group.id)
    return user_id


@dataclass(frozen=True)
class Access:
    """What a user can do, as an administrator sees it: compared before and after a sanction."""

    enabled: bool
    roles: frozenset[str]
    groups: frozenset[str]
    required_actions: tuple[str, ...]


def access_of(gateway: KeycloakGateway, realm: str, user_id: str) -> Access:
    user = gateway.get_user(realm, user_id)
    assert user is not None
    return Access(
        user.enabled,
        frozenset(role.name for role in gateway.user_realm_roles(realm, user_id)),
        frozenset(gateway.user_group_paths(realm, user_id)),
        user.required_actions,
    )


@dataclass(frozen=True)
class TokenClient:
    """The realm's token endpoint, used as the end user would."""

    url: str
    realm: str

    @property
    def endpoint(self) -> str:
        return f"{self.url}/realms/{self.realm}/protocol/openid-connect/token"

    def login(self, username: str, client_id: str, *, offline: bool = False) -> requests.Response:
        scope = "openid offline_access" if offline else "openid"
        data = {"grant_type": "password", "client_id": client_id, "username": username, "password": PASSWORD}
        return requests.post(self.endpoint, data={**data, "scope": scope}, timeout=TIMEOUT_SECONDS)

    def refresh(self, client_id: str, refresh_token: str) -> requests.Response:
        data = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": refresh_token}
        return requests.post(self.endpoint, data=data, timeout=TIMEOUT_SECONDS)


def claims(access_token: str) -> dict[str, Any]:
    """The payload of a JWT (not verified: the test only reads what Keycloak put in it)."""
    payload = access_token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def context_for(
    gateway: KeycloakGateway, store: Store, realm: str, clock: ManualClock, policy: SanctionPolicy | None = None
) -> SanctionContext:
    return SanctionContext(gateway, store, realm, policy or sanction_policy(), None, clock, actor="moderator")
