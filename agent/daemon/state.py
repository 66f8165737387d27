"""When each job last ran, kept in the state dir so a restarted daemon makes one catch-up run (not one per
missed slot, and none when nothing was missed). One small file per job: two daemons never rewrite each
other's records, and a write is atomic (rename)."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

from agent.paths import state_dir


def default_state_folder() -> Path:
    return state_dir() / "daemon"


def _file_name(job_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", job_id) + ".last-run"


class LastRuns:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or default_state_folder()

    def get(self, job_id: str) -> datetime | None:
        try:
            text = (self.folder / _file_name(job_id)).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None  # a torn or edited file: treat as never run (one run at once)
        return moment if moment.tzinfo is not None else None

    def set(self, job_id: str, moment: datetime) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.folder / _file_name(job_id)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(moment.isoformat(), encoding="utf-8")
        os.replace(temporary, target)
