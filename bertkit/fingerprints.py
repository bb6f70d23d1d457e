"""What an input is, not what it is called: fingerprints of the files, folders and checkpoints a run reads.

Small files are hashed whole. Big ones (corpora, checkpoint weights) are identified cheaply by their size,
modification time and a hash of blocks sampled across them, so that recording a run's inputs costs
milliseconds, not a read of every gigabyte. A Hub id is recorded as the name it is.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import Any

WHOLE_FILE_LIMIT = 8 << 20
"""Files up to this size are hashed whole."""
SAMPLED_BLOCKS, BLOCK_SIZE = 32, 64 << 10


def of_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """{setting: fingerprint} of every input setting that is set (a path, a list of paths, or a Hub id)."""
    found: dict[str, Any] = {}
    for key, value in sorted(settings.items()):
        if value is None or value == []:
            continue
        if isinstance(value, (list, tuple)):
            found[key] = [of_location(str(item)) for item in value]
        else:
            found[key] = of_location(str(value))
    return found


def of_location(spelled: str) -> dict[str, Any]:
    """A file, a folder (every file below it), a glob pattern (every match), or a name that is not a place."""
    path = Path(spelled).expanduser()
    if path.is_file():
        return {"path": str(path.resolve()), "files": {path.name: of_file(path)}}
    if path.is_dir():
        below = sorted(p for p in path.rglob("*") if p.is_file())
        return {"path": str(path.resolve()), "files": {p.relative_to(path).as_posix(): of_file(p) for p in below}}
    if glob.has_magic(spelled):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spelled), recursive=True))
        files = {str(p.resolve()): of_file(p) for p in matches if p.is_file()}
        return {"pattern": str(Path(os.path.expanduser(spelled)).absolute()), "files": files}
    return {"name": spelled}


def of_file(path: Path) -> dict[str, Any]:
    """Size and sha256 of a small file; size, mtime and the sha256 of sampled blocks of a big one."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if stat.st_size <= WHOLE_FILE_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return {"size": stat.st_size, "sha256": digest.hexdigest()}
        step = (stat.st_size - BLOCK_SIZE) // (SAMPLED_BLOCKS - 1)
        for index in range(SAMPLED_BLOCKS):
            handle.seek(index * step)
            digest.update(handle.read(BLOCK_SIZE))
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sampled_sha256": digest.hexdigest()}


def difference(before: Any, now: Any) -> str | None:
    """How one setting's inputs differ, in a few words; None when they are the same."""
    if before == now:
        return None
    before_list, now_list = (x if isinstance(x, list) else [x] for x in (before, now))
    if len(before_list) != len(now_list):
        return f"{len(before_list)} places then, {len(now_list)} now"
    for then, current in zip(before_list, now_list, strict=True):
        if then == current:
            continue
        if _place(then) != _place(current):
            return f"it pointed to {_place(then)}, now to {_place(current)}"
        files_then, files_now = then.get("files", {}), current.get("files", {})
        for name in sorted(set(files_then) | set(files_now)):
            if name not in files_now:
                return f"{name} is gone"
            if name not in files_then:
                return f"{name} is new"
            if files_then[name] != files_now[name]:
                return f"the content of {name} changed"
    return "it changed"


def _place(fingerprint: dict[str, Any]) -> str:
    return fingerprint.get("path") or fingerprint.get("pattern") or fingerprint.get("name") or "?"
