"""Real logins through the MFA browser flow, driven over HTTP like a browser (no browser needed).

Holders of an MFA role (directly, through a group or a parent group) are sent to OTP setup or the OTP
form; everyone else is redirected to the client with a code. Nobody is asked for a second code.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from agent.keycloak import KeycloakGateway, UserDraft
from agent.realm import engine
from agent.realm.kinds.base import Kind
from agent.realm.kinds.flows import Flows
from agent.realm.kinds.groups import GroupGrants, Groups
from agent.realm.kinds.mfa_groups import MfaGroups
from agent.realm.kinds.realm_settings import RealmSettings
from agent.realm.kinds.required_actions import RequiredActions
from agent.realm.kinds.roles import RealmRoles
from agent.realm.kinds.terms import Terms
from agent.secrets import Secret
from agent.settings import KeycloakConnection
from tests.harness.realm_steps import apply_and_converge, planned, spec_of

# The kinds these tests exercise, in the order they belong in engine.KINDS.
KINDS: tuple[Kind, ...] = (
    RealmSettings(),
    RealmRoles(),
    Groups(),
    GroupGrants(),
    RequiredActions(),
    Terms(),
    Flows(),
    MfaGroups(),
)
CLIENT_ID = "portal"
REDIRECT_URI = "http://localhost:9/callback"
TOTP_PERIOD_SECONDS = 30


@pytest.fixture(autouse=True)
def registered_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """apply_plan finds a change's kind by name: make sure these kinds are known to it."""
    for kind in KINDS:
        monkeypatch.setitem(engine.KINDS_BY_NAME, kind.name, kind)


# -- a browser over HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Where a login step ended: redirected to the client with a `code`, or on a Keycloak page."""

    code: str | None
    url: str
    page: str

    @property
    def fields(self) -> set[str]:
        return set(re.findall(r'<input[^>]*\sname="([^"]+)"', self.page))

    def form_action(self) -> str:
        match = re.search(r'<form[^>]*\saction="([^"]+)"', self.page)
        assert match, f"no form on the page at {self.url}"
        return html.unescape(match.group(1))

    def hidden(self, name: str) -> str:
        match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', self.page)
        assert match, f"no field {name} on the page at {self.url}"
        return html.unescape(match.group(1))


class Browser:
    """Keeps cookies and follows Keycloak's redirects by hand, stopping at the client's redirect URI."""

    def __init__(self, server_url: str, realm: str) -> None:
        self.server_url = server_url
        self.realm = realm
        self.session = requests.Session()

    def open_login(self) -> Outcome:
        params = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid"}
        url = f"{self.server_url}/realms/{self.realm}/protocol/openid-connect/auth"
        return self._follow(self.session.get(url, params=params, allow_redirects=False))

    def submit(self, outcome: Outcome, **fields: str) -> Outcome:
        return self._follow(self.session.post(outcome.form_action(), data=fields, allow_redirects=False))

    def _follow(self, response: requests.Response) -> Outcome:
        while True:
            # Keycloak marks its cookies Secure; the test server speaks plain HTTP on loopback.
            for cookie in self.session.cookies:
                cookie.secure = False
            location = response.headers.get("Location")
            if response.status_code not in {301, 302, 303} or not location:
                return Outcome(None, response.url, response.text)
            if location.startswith(REDIRECT_URI):
                code = parse_qs(urlsplit(location).query).get("code", [None])[0]
                return Outcome(code, location, "")
            response = self.session.get(location, allow_redirects=False)


def log_in(server_url: str, realm: str, username: str) -> tuple[Browser, Outcome]:
    browser = Browser(server_url, realm)
    page = browser.open_login()
    assert "username" in page.fields, f"no login form for {realm}"
    return browser, browser.submit(page, username=username, password=password_of(username), credentialId="")


def totp(secret: str, at: float | None = None) -> str:
    """RFC 6238 code for the secret Keycloak's OTP setup page carries (raw text, HMAC-SHA1, 6 digits)."""
    counter = int((time.time() if at is None else at) // TOTP_PERIOD_SECONDS)
    digest = hmac.new(secret.encode(), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def asks_otp_setup(outcome: Outcome) -> bool:
    return outcome.code is None and {"totp", "totpSecret"} <= outcome.fields


def asks_otp(outcome: Outcome) -> bool:
    return outcome.code is None and "otp" in outcome.fields and "totpSecret" not in outcome.fields


# -- realm set-up ---------------------------------------------------------------------------------------


def password_of(username: str) -> str:
    return f"pw-{username}-7Hq!"


def add_client(gateway: KeycloakGateway, realm: str) -> None:
    client = {"clientId": CLIENT_ID, "publicClient": True, "standardFlowEnabled": True, "redirectUris": [REDIRECT_URI]}
    gateway.create_client(realm, client)


def add_user(
    gateway: KeycloakGateway, realm: str, username: str, *, roles: tuple[str, ...] = (), groups: tuple[str, ...] = ()
) -> str:
    draft = UserDraft(
        username, email=f"{username}@example.org", first_name=username, last_name="Tester", email_verified=True
    )
    user_id = gateway.create_user(realm, draft)
    gateway.set_password(realm, user_id, Secret(password_of(username)))
    for name in roles:
        role = gateway.get_realm_role(realm, name)
        assert role is not None
        gateway.add_realm_roles_to_user(realm, user_id, [role])
    for path in groups:
        group = gateway.find_group_by_path(realm, path)
        assert group is not None
        gateway.add_user_to_group(realm, user_id, group.id)
    return user_id


def mfa_spec(realm: str, **mfa: Any) -> dict[str, Any]:
    return {
        "realm": realm,
        # Reusable codes let a test log in twice within one 30-second window.
        "otp_policy": {"reusable": True},
        "roles": [{"name": "admin"}, {"name": "auditor"}, {"name": "clerk"}],
        "groups": [{"path": "/ops"}, {"path": "/ops/night"}, {"path": "/sales"}],
        "mfa": mfa,
    }


@pytest.fixture
def mfa_realm(keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, realm: str) -> Iterator[str]:
    """MFA for role `admin` and group `/ops`, a public client, and users of every kind."""
    apply_and_converge(
        keycloak_connection, spec_of(mfa_spec(realm, otp_for_roles=["admin"], otp_for_groups=["/ops"])), KINDS
    )
    add_client(gateway, realm)
    add_user(gateway, realm, "alice", roles=("admin",))
    add_user(gateway, realm, "oscar", groups=("/ops",))
    add_user(gateway, realm, "nina", groups=("/ops/night",))
    add_user(gateway, realm, "paula", roles=("clerk",), groups=("/sales",))
    add_user(gateway, realm, "both", roles=("admin",), groups=("/ops",))
    yield realm


# -- scenarios ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "why"),
    [("alice", "holds admin"), ("oscar", "member of /ops"), ("nina", "member of /ops/night, under /ops")],
)
def test_mfa_users_are_sent_to_otp_setup(
    keycloak_connection: KeycloakConnection, mfa_realm: str, username: str, why: str
) -> None:
    _, outcome = log_in(keycloak_connection.url, mfa_realm, username)

    assert asks_otp_setup(outcome), f"{username} ({why}) was not asked to set up OTP: {outcome.url}"


def test_plain_user_is_redirected_with_a_code(keycloak_connection: KeycloakConnection, mfa_realm: str) -> None:
    _, outcome = log_in(keycloak_connection.url, mfa_realm, "paula")

    assert outcome.code, f"paula was stopped at {outcome.url}"


def test_user_with_otp_and_two_mfa_grants_is_asked_for_one_code(
    keycloak_connection: KeycloakConnection, mfa_realm: str
) -> None:
    # Step 1: first login sets OTP up, and one valid code finishes it.
    browser, setup = log_in(keycloak_connection.url, mfa_realm, "both")
    assert asks_otp_setup(setup)
    secret = setup.hidden("totpSecret")
    done = browser.submit(setup, totp=totp(secret), totpSecret=secret, userLabel="phone")
    assert done.code, f"OTP setup did not finish: {done.url}"

    # Step 2: next login asks for the code once (Keycloak's own 2FA sub-flow), then lets the user in.
    browser, form = log_in(keycloak_connection.url, mfa_realm, "both")
    assert asks_otp(form)
    signed_in = browser.submit(form, otp=totp(secret))
    assert signed_in.code, f"asked again after one valid code: {signed_in.url} {sorted(signed_in.fields)}"


def test_removing_mfa_lets_everyone_in_with_a_password(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, mfa_realm: str
) -> None:
    # Leaving `mfa` out does not manage MFA: nothing changes.
    spec = mfa_spec(mfa_realm)
    del spec["mfa"]
    assert planned(keycloak_connection, spec_of(spec), KINDS).is_empty
    # `mfa` with no roles and no groups removes it.
    spec["mfa"] = {"otp_for_roles": [], "otp_for_groups": []}
    apply_and_converge(keycloak_connection, spec_of(spec), KINDS)

    live = gateway.get_realm(mfa_realm)
    assert live is not None and live.representation["browserFlow"] == "browser"
    for username in ("alice", "oscar", "paula"):
        _, outcome = log_in(keycloak_connection.url, mfa_realm, username)
        assert outcome.code, f"{username} was stopped at {outcome.url}"


def test_login_opened_before_a_flow_change_restarts_on_the_new_flow(
    keycloak_connection: KeycloakConnection, mfa_realm: str
) -> None:
    # Step 1: two login pages are open on the old flow (MFA for admin and /ops).
    paula = Browser(keycloak_connection.url, mfa_realm)
    paula_page = paula.open_login()
    alice = Browser(keycloak_connection.url, mfa_realm)
    alice_page = alice.open_login()

    # Step 2: the roles change: a new flow is built and bound, the old one deleted.
    apply_and_converge(keycloak_connection, spec_of(mfa_spec(mfa_realm, otp_for_roles=["clerk"])), KINDS)

    # Step 3: the old forms are not an error; Keycloak shows a fresh login form on the new flow.
    again = paula.submit(paula_page, username="paula", password=password_of("paula"), credentialId="")
    assert again.code is None and "username" in again.fields
    # Step 4: signing in on that form follows the new flow: clerk paula now sets up OTP, alice does not.
    assert asks_otp_setup(paula.submit(again, username="paula", password=password_of("paula"), credentialId=""))
    alice_again = alice.submit(alice_page, username="alice", password=password_of("alice"), credentialId="")
    done = alice.submit(alice_again, username="alice", password=password_of("alice"), credentialId="")
    assert done.code, f"alice was stopped at {done.url}"


def test_changing_mfa_groups_moves_the_group_role_and_keeps_the_flow(
    keycloak_connection: KeycloakConnection, gateway: KeycloakGateway, mfa_realm: str
) -> None:
    before = gateway.get_realm(mfa_realm)
    assert before is not None

    plan = apply_and_converge(
        keycloak_connection, spec_of(mfa_spec(mfa_realm, otp_for_roles=["admin"], otp_for_groups=["/sales"])), KINDS
    )

    assert [(c.action, c.kind, c.key) for c in plan.changes] == [("update", "mfa groups", "idp-agent-mfa-required")]
    assert [(f.live, f.desired) for f in plan.changes[0].fields] == [(["/ops"], ["/sales"])]
    after = gateway.get_realm(mfa_realm)
    assert after is not None and after.representation["browserFlow"] == before.representation["browserFlow"]
    assert asks_otp_setup(log_in(keycloak_connection.url, mfa_realm, "paula")[1])
    assert log_in(keycloak_connection.url, mfa_realm, "oscar")[1].code
