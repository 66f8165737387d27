"""Load realm-config/: every file parsed and validated, presets resolved, cross-references checked.

All problems of all files are collected and raised together (ConfigErrors) before anything talks to
Keycloak. A realm is one YAML file, or a folder whose YAML files are merged (each top-level key in one
file only); a native Keycloak realm export (JSON) is accepted as a file too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from agent.config.diagnostics import ConfigErrors, Diagnostic, Diagnostics, diagnostics_from_validation_error
from agent.config.source import ConfigPath, Document, load_document, parse_document
from agent.realm.password_policy import PasswordPolicySpec
from agent.realm.references import check_references
from agent.realm.spec import LockoutSpec, RealmSpec

YAML_SUFFIXES = (".yaml", ".yml")
PRESET_FILES: dict[str, tuple[str, type[pydantic.BaseModel]]] = {
    "password_policy": ("password.yaml", PasswordPolicySpec),
    "lockout": ("lockout.yaml", LockoutSpec),
}


@dataclass(frozen=True)
class SourcedRealm:
    """A validated realm spec and the documents it came from (for positions in later messages)."""

    spec: RealmSpec
    documents: tuple[Document, ...]
    owner_of: Mapping[str, Document]

    def where(self, path: ConfigPath) -> str:
        document = self.owner_of.get(str(path[0])) if path else None
        document = document or self.documents[0]
        position = document.position_of(path)
        return f"{document.name}:{position.line}:{position.col}"


REALM_FOLDER_MARKERS = ("realm.yaml", "realm.yml")


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES)


def discover_realm_sources(paths: Sequence[Path]) -> list[list[Path]]:
    """Group files into realms. A file is a realm. A folder holding `realm.yaml` is one realm whose YAML
    files are merged. Any other folder (such as realm-config/) holds one realm per YAML or JSON file and
    one per subfolder (whose YAML files are merged). schema.json is never a realm."""
    realms: list[list[Path]] = []
    for path in paths:
        if path.is_file():
            realms.append([path])
        elif any((path / marker).is_file() for marker in REALM_FOLDER_MARKERS):
            realms.append(_yaml_files(path))
        else:
            for entry in sorted(path.iterdir()):
                if (entry.is_file() and entry.suffix in YAML_SUFFIXES) or _is_native_export(entry):
                    realms.append([entry])
                elif entry.is_dir() and not entry.name.startswith(".") and _yaml_files(entry):
                    realms.append(_yaml_files(entry))
    return realms


def _is_native_export(path: Path) -> bool:
    return path.is_file() and path.suffix == ".json" and path.name != "schema.json"


def _parse(path: Path, env: Mapping[str, str], diagnostics: Diagnostics) -> Document | None:
    try:
        if path.suffix == ".json":
            return _native_document(path, env)
        return load_document(path, env=env, base_dir=path.parent)
    except ConfigErrors as errors:
        diagnostics.extend(errors.diagnostics)
        return None


def _native_document(path: Path, env: Mapping[str, str]) -> Document:
    """A realm exported from the admin console, read as friendly keys (positions are file-level)."""
    from agent.realm.native import friendly_from_representation

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigErrors([Diagnostic(str(path), 1, 1, f"not a readable realm export: {error}")]) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("realm"), str):
        raise ConfigErrors([Diagnostic(str(path), 1, 1, "not a realm export: an object with a 'realm' name")])
    try:
        converted = friendly_from_representation(raw)
    except (AttributeError, KeyError, TypeError, ValueError):
        # The converter walks Keycloak's shapes (lists of objects, maps of lists): any other JSON breaks it somewhere.
        message = "not a realm export as the admin console writes it: a part has another shape than Keycloak's"
        raise ConfigErrors([Diagnostic(str(path), 1, 1, message)]) from None
    # Through the YAML loader, so the ${env:...} references written for secrets resolve as in YAML files.
    friendly = yaml.safe_dump(converted, sort_keys=False, allow_unicode=True)
    return parse_document(friendly, str(path), env=env, base_dir=path.parent)


def _merge(documents: list[Document], diagnostics: Diagnostics) -> tuple[dict[str, Any], dict[str, Document]]:
    merged: dict[str, Any] = {}
    owner: dict[str, Document] = {}
    for document in documents:
        if document.data is None:
            continue
        if not isinstance(document.data, dict):
            diagnostics.add(Diagnostic(document.name, 1, 1, "a realm file must be a mapping of keys"))
            continue
        for key, value in document.data.items():
            if key == "realm" and key in merged and merged[key] == value:
                continue
            if key in owner:
                first = owner[key]
                where = first.key_position_of((key,))
                position = document.key_position_of((key,))
                diagnostics.add(
                    Diagnostic(
                        document.name,
                        position.line,
                        position.col,
                        f"'{key}' is already written in {first.name}:{where.line}",
                        hint="write each top-level key in one file of the realm folder",
                    )
                )
                continue
            merged[key] = value
            owner[key] = document
    return merged, owner


def _validate_parts(documents: list[Document], realm_name: str, diagnostics: Diagnostics) -> bool:
    """Validate each file on its own (with the realm name), so every error points into its own file."""
    ok = True
    for document in documents:
        if not isinstance(document.data, dict):
            continue
        try:
            RealmSpec.model_validate({**document.data, "realm": document.data.get("realm", realm_name)})
        except pydantic.ValidationError as error:
            diagnostics.extend(diagnostics_from_validation_error(error, document, model=RealmSpec))
            ok = False
    return ok


def load_presets(policies_dir: Path, env: Mapping[str, str], diagnostics: Diagnostics) -> dict[str, dict[str, Any]]:
    """Named presets per field (`password_policy`, `lockout`) from policies/<file>: `presets: {name: {...}}`."""
    presets: dict[str, dict[str, Any]] = {}
    for field_name, (file_name, model) in PRESET_FILES.items():
        presets[field_name] = {}
        path = policies_dir / file_name
        if not path.is_file():
            continue
        document = _parse(path, env, diagnostics)
        if document is None or document.data is None:
            continue
        if not isinstance(document.data, dict):
            hint = "write presets: {name: {...}}"
            diagnostics.add(Diagnostic(document.name, 1, 1, f"{file_name} is a mapping with presets:", hint))
            continue
        if not _preset_file_shape(document, file_name, diagnostics):
            continue
        for name, body in (document.data.get("presets") or {}).items():
            try:
                presets[field_name][name] = model.model_validate(body)
            except pydantic.ValidationError as error:
                diagnostics.extend(
                    diagnostics_from_validation_error(error, document, prefix=("presets", name), model=model)
                )
    return presets


def _preset_file_shape(document: Document, file_name: str, diagnostics: Diagnostics) -> bool:
    """A presets file holds `presets:`, a mapping of names; anything else is an error at its place (a typo such
    as `preset:` would otherwise leave every realm naming a preset with 'none defined')."""
    data = document.data
    ok = True
    for key in sorted(set(data) - {"presets"}):
        where = document.key_position_of((key,))
        message = f"unknown key '{key}' in {file_name}"
        diagnostics.add(Diagnostic(document.name, where.line, where.col, message, "write presets: {name: {...}}"))
        ok = False
    presets = data.get("presets")
    if presets is not None and not isinstance(presets, dict):
        where = document.position_of(("presets",))
        message = "presets is a mapping of preset names to settings"
        diagnostics.add(Diagnostic(document.name, where.line, where.col, message, "write presets: {name: {...}}"))
        ok = False
    return ok


def _resolve_presets(
    spec: RealmSpec, presets: Mapping[str, Mapping[str, Any]], sourced: SourcedRealm, diagnostics: Diagnostics
) -> RealmSpec:
    updates: dict[str, Any] = {}
    for field_name in PRESET_FILES:
        value = getattr(spec, field_name)
        if not isinstance(value, str):
            continue
        known = presets.get(field_name, {})
        if value in known:
            updates[field_name] = known[value]
            continue
        file, line, col = sourced.where((field_name,)).rsplit(":", 2)
        names = ", ".join(sorted(known)) or "none defined"
        diagnostics.add(
            Diagnostic(
                file,
                int(line),
                int(col),
                f"unknown {field_name} preset '{value}'",
                hint=f"presets in policies/{PRESET_FILES[field_name][0]}: {names}",
            )
        )
    return spec.model_copy(update=updates) if updates else spec


def load_realms(paths: Sequence[Path], *, policies_dir: Path, env: Mapping[str, str]) -> list[SourcedRealm]:
    """Every realm under `paths`, validated; raises ConfigErrors with all problems found, sorted."""
    diagnostics = Diagnostics()
    presets = load_presets(policies_dir, env, diagnostics)
    realms: list[SourcedRealm] = []
    names: dict[str, str] = {}
    for files in discover_realm_sources(paths):
        documents = [doc for doc in (_parse(path, env, diagnostics) for path in files) if doc is not None]
        if not documents:
            continue
        merged, owner = _merge(documents, diagnostics)
        realm_name = merged.get("realm")
        if not isinstance(realm_name, str):
            diagnostics.add(
                Diagnostic(documents[0].name, 1, 1, "no 'realm:' name written", hint="add `realm: <name>` to one file")
            )
            continue
        if not _validate_parts(documents, realm_name, diagnostics):
            continue
        spec = RealmSpec.model_validate(merged)
        sourced = SourcedRealm(spec, tuple(documents), owner)
        spec = _resolve_presets(spec, presets, sourced, diagnostics)
        sourced = SourcedRealm(spec, tuple(documents), owner)
        if realm_name in names:
            file, line, col = sourced.where(("realm",)).rsplit(":", 2)
            diagnostics.add(
                Diagnostic(file, int(line), int(col), f"realm '{realm_name}' is also defined in {names[realm_name]}")
            )
            continue
        names[realm_name] = sourced.where(("realm",))
        diagnostics.extend(_located(check_references(spec), sourced))
        realms.append(sourced)
    diagnostics.raise_if_any()
    return realms


def _located(problems: Iterable[tuple[ConfigPath, str, str]], sourced: SourcedRealm) -> list[Diagnostic]:
    located = []
    for path, message, hint in problems:
        file, line, col = sourced.where(path).rsplit(":", 2)
        located.append(Diagnostic(file, int(line), int(col), message, hint))
    return located
