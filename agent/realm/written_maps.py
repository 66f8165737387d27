"""Maps applied to Keycloak as written (`keycloak:` realm keys, component `config:`): what may not be in them.

A secret there would be shown in every plan (and compared with Keycloak's masked copy, so never equal), and a
${env:} or ${file:} value could not be sent at all; the agent's own bookkeeping attributes are left out of plans,
so a value written for one would change unseen.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.config.diagnostics import is_secret_key
from agent.secrets import Secret

# Where secrets go instead, each kept hidden in plans and sent from ${env:} or ${file:}.
WHERE_HIDDEN_VALUES_GO = (
    "write it under bind_credential (LDAP), smtp.password or a client's secret, from ${env:} or ${file:}"
)
# Realm attributes no user manages: the agent's bookkeeping (fingerprints are hashes of secrets, ownership
# marks) and Keycloak's client secret records. Plans leave them out; `keycloak: {attributes:}` may not set them.
BOOKKEEPING_ATTRIBUTE_PREFIXES = ("idp-agent.", "client.secret.")
# Keycloak keys named like a secret that hold a list of credential types (password, otp), not a secret.
CREDENTIAL_TYPE_LISTS = frozenset({"requiredCredentials"})


def no_secrets_in(value: object, where: str) -> None:
    """ValueError for a secret anywhere in `value`, a map applied as written."""
    if isinstance(value, Secret):
        raise ValueError(f"{where} takes no ${{env:}} or ${{file:}} secret: {WHERE_HIDDEN_VALUES_GO}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if is_secret_key(str(key)) and _holds_secret_values(str(key), item):
                raise ValueError(f"'{key}' in {where} is a secret: {WHERE_HIDDEN_VALUES_GO}")
            no_secrets_in(item, where)
    elif isinstance(value, list | tuple):
        for item in value:
            no_secrets_in(item, where)


def no_bookkeeping_in(attributes: object) -> None:
    """ValueError for a bookkeeping key among realm attributes written under `keycloak:`."""
    for key in attributes if isinstance(attributes, Mapping) else ():
        if str(key).startswith(BOOKKEEPING_ATTRIBUTE_PREFIXES):
            raise ValueError(f"'{key}' in keycloak.attributes is the agent's or Keycloak's own bookkeeping")


def _holds_secret_values(key: str, item: object) -> bool:
    """Whether a secret-named key holds what could be a secret: a text or a number, alone or in a list
    (component config values are lists: bindCredential: [hunter2]), or a map (credentials: [{type: password,
    value: ...}]). A flag (revokeRefreshToken: true) is none."""
    if isinstance(item, list | tuple):
        return key not in CREDENTIAL_TYPE_LISTS and any(_holds_secret_values(key, element) for element in item)
    return isinstance(item, Mapping) or _secret_scalar(item)


def _secret_scalar(item: object) -> bool:
    return isinstance(item, str | Secret | int | float) and not isinstance(item, bool)
