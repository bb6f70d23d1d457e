"""What an input is, not what it is called: fingerprints of the files, folders and checkpoints a run reads.

Small files (configs, vocabularies, most data files) are hashed whole. Big ones (corpora, checkpoint weights)
are identified cheaply by their size, modification time and a hash of blocks sampled across them: at most
512 KiB is read of any file, so recording a run's inputs costs milliseconds, not a read of every gigabyte
(a copy without its modification time reads as another file). A Hub id is recorded as the name it is.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

WHOLE_FILE_LIMIT = 512 << 10
"""Files up to this size are hashed whole."""
SAMPLED_BLOCKS, BLOCK_SIZE = 32, 16 << 10


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
    """A file, a folder (every file below it), a glob pattern (every match), or a name that is not a place.
    Hidden files and folders (`.git/`, `.cache/`, `.DS_Store`) are not the input: tools rewrite them."""
    path = Path(spelled).expanduser()
    if path.is_file():
        return {"kind": "file", "path": str(path.resolve()), "files": {path.name: of_file(path)}}
    if path.is_dir():
        below = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        files = {p.relative_to(path).as_posix(): of_file(p) for p in below}
        return {"kind": "folder", "path": str(path.resolve()), "files": files}
    if glob.has_magic(spelled):
        matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spelled), recursive=True))
        files = {str(p.resolve()): of_file(p) for p in matches if p.is_file() and not _hidden(p)}
        return {"kind": "pattern", "path": str(Path(os.path.expanduser(spelled)).absolute()), "files": files}
    return {"kind": "name", "name": spelled}


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") and part not in (".", "..") for part in relative.parts)


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
    """How one setting's inputs differ, in a few words; None when they are the same content (wherever it is:
    the same files moved or spelled otherwise are the same input)."""
    if before is None or now is None:
        return None if before is now else ("it is set now" if before is None else "it is no longer set")
    before_list, now_list = (x if isinstance(x, list) else [x] for x in (before, now))
    if [_content(fp) for fp in before_list] == [_content(fp) for fp in now_list]:
        return None
    if len(before_list) != len(now_list):
        return f"{len(before_list)} places then, {len(now_list)} now"
    for then, current in zip(before_list, now_list, strict=True):
        if _content(then) == _content(current):
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


def _content(fingerprint: dict[str, Any]) -> Any:
    """What a location holds, without where it is: the files' fingerprints (by their names within a folder)."""
    kind, files = fingerprint.get("kind"), fingerprint.get("files", {})
    if kind == "name":
        return fingerprint["name"]
    if kind == "folder":
        return files
    return sorted(json.dumps(fp, sort_keys=True) for fp in files.values())  # a file's or pattern's: names aside


def _place(fingerprint: dict[str, Any]) -> str:
    return str(fingerprint.get("path") or fingerprint.get("name"))
