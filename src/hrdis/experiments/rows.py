"""The benchmark's row store: one JSON line per finished (column, method, image) cell, written and fsynced as
each cell finishes, so an interrupted run loses at most the cell in flight. A cell that raised has an *error
row* (its identifying keys and ``"error": "Type: message"``); the latest row per cell key wins
(``all_rows``), so a re-run that retries a failed cell replaces its error row. Under torchrun each rank
appends to ``rows.rank{r}.jsonl`` and ``merge_rank_rows`` folds them into ``rows.jsonl``. Features for the
set measures (FID, the EfficientNet-Lite0 distances) are saved beside the rows, one file per cell."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import torch

from .. import images


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", name)


def read_rows(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interruption: that cell is redone
                continue
    return rows


def cell_key(task: str, method: str, image: str, noise: str, seed: int, tag: str = "") -> str:
    return f"{task}|{method}|{image}|{noise}|{seed}" + (f"|{tag}" if tag else "")


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` on one line (torch messages span several)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def is_error(row: dict) -> bool:
    return "error" in row


def failed_cells(rows: list[dict], row_names: list, col_names: list, row_of=lambda r: r["method"]) -> list[dict]:
    """The error rows of the given table rows (methods by default) and columns (labels)."""
    return [r for r in rows if is_error(r) and row_of(r) in row_names and col_label(r) in col_names]


def failure_notes(rows: list[dict], row_names: list, col_names: list, row_of=lambda r: r["method"]) -> list[str]:
    """Markdown footer naming, per (row, column), how many images failed and the first error; empty if none."""
    groups: dict = {}
    for r in failed_cells(rows, row_names, col_names, row_of):
        groups.setdefault((row_of(r), col_label(r)), []).append(r)
    if not groups:
        return []
    notes = ["", f"**Failed cells** ({sum(map(len, groups.values()))}; left out of the means, a re-run of the "
             "same command retries them):"]
    for (name, col), failed in groups.items():
        n = sum(1 for r in rows if row_of(r) == name and col_label(r) == col)
        notes.append(f"- {name}, {col}: {len(failed)} of {n} image(s) failed, e.g. {failed[0]['image']}: "
                     f"{failed[0]['error']}")
    return notes


def fid_feature_path(out: str | Path, key: str) -> Path:
    """Where a cell's (or, for ``truth_key(image)``, a truth's) Inception features are saved."""
    return Path(out) / "fid_features" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"


def effnet_feature_path(out: str | Path, key: str) -> Path:
    """Where a cell's (or a truth's) pooled EfficientNet-Lite0 features are saved."""
    return Path(out) / "effnet_features" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npy"


def truth_key(image: str) -> str:
    return f"truth|{image}"


def save_array(path: Path, features: torch.Tensor) -> None:
    buf = io.BytesIO()
    np.save(buf, features.float().cpu().numpy())
    images.atomic_write_bytes(path, buf.getvalue())


def drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by an interruption, so the next row starts on a line of its own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def all_rows(out: str | Path) -> list[dict]:
    """Every row in ``out``'s rows*.jsonl, one per cell key: the latest (rows.jsonl, then the rank files, each in
    order), so a retried cell's success replaces its error row; an error row never replaces a finished row."""
    latest: dict[str, dict] = {}
    for p in sorted(Path(out).glob("rows*.jsonl")):
        for r in read_rows(p):
            if not is_error(r) or is_error(latest.get(r["key"], r)):
                latest[r["key"]] = r
    return list(latest.values())


def merge_rank_rows(out: str | Path) -> list[dict]:
    """Fold rows.rank*.jsonl into rows.jsonl (one line per cell, the latest) and remove them; returns all rows.
    Also compacts rows.jsonl when retried cells left superseded lines in it."""
    out = Path(out)
    rank_files = sorted(out.glob("rows.rank*.jsonl"))
    rows = all_rows(out)
    if not rank_files and len(read_rows(out / "rows.jsonl")) == len(rows):
        return rows
    images.atomic_write_bytes(out / "rows.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows).encode())
    for p in rank_files:
        p.unlink()
    return rows


def col_label(r: dict) -> str:
    """The column a row belongs to (rows from before columns had labels name only their task)."""
    return r.get("column", r["task"])
