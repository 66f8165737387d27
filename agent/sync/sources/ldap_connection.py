"""Connecting the `ldap` source: TLS before the bind (LDAPS, or StartTLS with the certificate always verified),
search entries kept raw (RawEntries), and what went wrong said for an operator without the password."""

from __future__ import annotations

import contextlib
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.conv import to_unicode

from agent.secrets import HIDDEN
from agent.sync.sources.config import LdapSourceConfig
from agent.sync.sources.ldap_entries import search_entry

DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}


def open_connection(config: LdapSourceConfig) -> ldap3.Connection:
    """A bound connection: TLS first (LDAPS, or StartTLS before the bind), so the password never goes plain."""
    password = config.bind_password.reveal()
    if not password:
        # An empty password makes a simple bind anonymous (RFC 4513 5.1.2): it would "succeed" and see nothing.
        raise ldap_errors.LDAPPasswordIsMandatoryError("the bind password is empty")
    parts = urlsplit(config.url)
    mode = config.tls_mode
    tls = None
    if mode != "none":
        ca_file = str(config.ca_file) if config.ca_file is not None else None
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
    server = ldap3.Server(
        parts.hostname or "",
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        use_ssl=mode == "ldaps",
        tls=tls,
        connect_timeout=config.connect_timeout_seconds,
        get_info=ldap3.NONE,
    )
    connection = ldap3.Connection(
        server,
        user=config.bind_dn,
        password=password,
        receive_timeout=config.receive_timeout_seconds,
        raise_exceptions=True,
        read_only=True,
        auto_referrals=False,  # a referral would send our bind to another server
        # Values are read raw (see entry_record); without this ldap3 also formats each one by the schema.
        check_names=False,
        # An attribute the entry lacks stays absent rather than an empty list (RawEntries keeps no `attributes`).
        return_empty_attributes=False,
        auto_bind=ldap3.AUTO_BIND_NONE,
    )
    connection.strategy.__class__ = RawEntries
    try:
        connection.open()
        if mode == "start-tls":
            _start_tls(connection)
        connection.bind()
    except BaseException:
        close_connection(connection)
        raise
    return connection


class RawEntries(SyncStrategy):  # type: ignore[misc]  # ldap3 has no type hints
    """ldap3's synchronous strategy with search entries left as the server sent them: the DN and the raw values
    by attribute name, decoded in one pass (ldap_entries). The stock decoding walks each element generically and
    then turns every value to text, through a case-insensitive dict and a configuration lookup per value, for
    values this source reads raw anyway (entry_record). Every other message goes through ldap3 as before."""

    _awaited: int | None = None
    _entries: list[dict[str, Any]]

    def _get_response(self, message_id: int, timeout: Any) -> Any:
        self._awaited, self._entries = message_id, []
        try:
            responses = super()._get_response(message_id, timeout)
        finally:
            self._awaited = None
        if not isinstance(responses, list):
            return responses  # the session ended: ldap3 raises on its marker
        return [*self._entries, *responses]

    def receiving(self) -> list[bytes]:
        """The messages for ldap3 to decode: the awaited search's entries are taken out on the way. Returns only
        with a message for ldap3, or none at all when the connection ended (ldap3 reads that as terminated)."""
        while True:
            messages: list[bytes] = super().receiving()
            if not messages or self._awaited is None:
                return messages
            left = [message for message in messages if not self._took(message)]
            if left:
                return left

    def _took(self, message: bytes) -> bool:
        entry = search_entry(message)
        if entry is None or entry.message_id != self._awaited:
            return False  # ldap3 decodes it (and raises on a message id it did not ask for)
        attributes = {_text(name): values for name, values in entry.raw_attributes.items()}
        dn = _text(entry.raw_dn)
        self._entries.append({"type": "searchResEntry", "raw_dn": entry.raw_dn, "dn": dn, "raw_attributes": attributes})
        return True


def _text(value: bytes) -> str:
    """DNs and attribute names are UTF-8 (RFC 4511 4.1.2-3); what is not is read as ldap3 reads it."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return str(to_unicode(value, from_server=True))


def _start_tls(connection: ldap3.Connection) -> None:
    """StartTLS, raising LDAPStartTLSError when the server refuses it or the certificate fails: never plain."""
    try:
        started = connection.start_tls()
    except ldap_errors.LDAPOperationResult as refused:
        raise ldap_errors.LDAPStartTLSError(f"startTLS failed - {refused.description}") from None
    if not started or not connection.tls_started:
        raise ldap_errors.LDAPStartTLSError("startTLS failed - notStarted")


def close_connection(connection: ldap3.Connection) -> None:
    # When the connection is gone already there is nothing to release.
    with contextlib.suppress(ldap_errors.LDAPException, OSError):
        connection.unbind()


def describe_error(error: BaseException, config: LdapSourceConfig) -> str:
    """What went wrong, for an operator: the LDAP result or the connection failure, never the password."""
    where = _server(config)
    text: str
    if isinstance(error, ldap_errors.LDAPInvalidCredentialsResult):
        text = f"bind as {config.bind_dn} refused: invalidCredentials (wrong or rotated password?)"
    elif isinstance(error, ldap_errors.LDAPOperationResult):
        message = f": {error.message}" if error.message else ""
        text = f"{where} answered {error.description}{message}"
    elif isinstance(error, ldap_errors.LDAPPasswordIsMandatoryError):
        text = "the bind password is empty (it would bind anonymously)"
    elif isinstance(error, ldap_errors.LDAPCertificateError | ldap_errors.LDAPStartTLSError) or _is_tls(error):
        text = f"TLS with {where} failed, nothing was sent in plain text: {_tls_reason(error)}"
    elif isinstance(error, ldap_errors.LDAPSocketOpenError):
        text = f"cannot connect to {where}: {_socket_reason(error)}"
    elif isinstance(error, ldap_errors.LDAPSocketReceiveError | ldap_errors.LDAPResponseTimeoutError | TimeoutError):
        text = f"{where} did not answer within {config.receive_timeout_seconds} s (or the connection broke)"
    elif isinstance(error, ldap_errors.LDAPSessionTerminatedByServerError | ldap_errors.LDAPSocketSendError):
        text = f"{where} closed or reset the connection"
    else:
        text = f"{where}: {type(error).__name__}: {error}"
    return _without_password(text, config)


def _server(config: LdapSourceConfig) -> str:
    parts = urlsplit(config.url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or DEFAULT_PORTS[parts.scheme]}"


def _is_tls(error: BaseException) -> bool:
    return isinstance(error, ssl.SSLError) or "ssl" in str(error).lower() or "certificate" in str(error).lower()


def _tls_reason(error: BaseException) -> str:
    text = str(error)
    if "doesn't match" in text or "hostname" in text.lower():
        return "the certificate does not match the server's host name"
    found = re.search(r"certificate verify failed: ([^(')\]]+)", text)
    if found:
        return f"certificate verify failed: {found.group(1).strip()}"
    found = re.search(r"startTLS failed - (\w+)", text)
    if found:
        return f"the server refused StartTLS ({found.group(1)})"
    return re.sub(r"\{.*\}", "", text)[:200]  # ldap3 may print the whole certificate; keep it short


def _socket_reason(error: BaseException) -> str:
    found = re.search(r"\[Errno \d+\] ([^\]',)]+)", str(error))
    return found.group(1).strip() if found else str(error)[:200]


def _without_password(text: str, config: LdapSourceConfig) -> str:
    password = config.bind_password.reveal()
    return text.replace(password, HIDDEN) if password else text
