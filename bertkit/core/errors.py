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


def unreachable_checkpoint_hint(name_or_path: str) -> str:
    """What to say when a checkpoint named by Hub id could not be read (often: no network)."""
    from pathlib import Path

    if Path(name_or_path).exists():
        return ""
    return "; offline? point it at a local checkpoint folder (make ... MODEL=/path/to/folder)"
