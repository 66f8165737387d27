"""Realm exports saved before an apply that changes something, rotated so the folder stays bounded."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from agent.keycloak import KeycloakGateway

KEEP_BACKUPS = 10


def save_backup(gateway: KeycloakGateway, realm: str, backups_dir: Path, keep: int = KEEP_BACKUPS) -> Path:
    """Write Keycloak's partial export of `realm` (secrets masked by Keycloak) and drop the oldest beyond `keep`."""
    folder = backups_dir / realm
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}.json"
    export = gateway.export_realm(realm)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(export, out, indent=1, sort_keys=True)
    for old in sorted(folder.glob("*.json"))[:-keep]:
        old.unlink()
    return path
