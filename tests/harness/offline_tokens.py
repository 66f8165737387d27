"""Offline tokens of a realm's users through its token endpoint (admin-cli, direct grant): to prove which
survive a leaver's disable or a rehire."""

from __future__ import annotations

import requests

from agent.settings import KeycloakConnection


def offline_login(connection: KeycloakConnection, realm: str, username: str, password: str) -> str:
    """A refresh token of an offline session of `username`."""
    answer = requests.post(
        f"{connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password,
              "scope": "openid offline_access"},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["refresh_token"])


def refresh_status(connection: KeycloakConnection, realm: str, token: str) -> int:
    """The token endpoint's status for a refresh with `token`: 200 while its session lives, 400 once ended."""
    answer = requests.post(
        f"{connection.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "refresh_token", "client_id": "admin-cli", "refresh_token": token},
        timeout=30,
    )
    return answer.status_code
