"""bertkit's own errors: each message is one line that names the file, line or setting at fault."""


class BertkitError(Exception):
    """Base class; `train.py` prints these as a single line instead of a traceback."""


class ConfigError(BertkitError, ValueError):
    """A setting is invalid; the message names the key and how to fix it."""


class DataError(BertkitError, ValueError):
    """Input data is missing or malformed; the message names the file (and line or byte offset)."""


class ModelError(BertkitError, ValueError):
    """A checkpoint or tokenizer cannot be used as configured."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type's name): what a one-line error quotes of it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def missing_checkpoint_message(
    setting: str, name_or_path: str, error: BaseException, wanted: str = "config.json"
) -> str:
    """Why a folder or Hub id named by a setting could not be read, in the terms the user typed."""
    from pathlib import Path

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return f"{setting}={name_or_path!r}: this folder has no readable {wanted} ({first_line(error)})"
    if path.exists():
        return f"{setting}={name_or_path!r} is a file; give the folder that holds {wanted}"
    if looks_like_path(name_or_path):
        return f"{setting}={name_or_path!r}: no such folder"
    return (
        f"{setting}={name_or_path!r}: no {wanted} could be read for this Hub id ({first_line(error)}); "
        "offline? point it at a local checkpoint folder (make ... MODEL=/path/to/folder)"
    )


def looks_like_path(name: str) -> bool:
    """A place on disk rather than a Hub id ("org/name" or "name")."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name
