"""Tag schemes of token classification: whatever scheme a file uses is read as IOB2 (what bertkit trains on),
and IOB2 is written back in the scheme asked for.

IOB2: B- begins every entity, I- continues it. IOB1 (CoNLL-2003's files): I- begins an entity too, unless it
continues one of its type; B- only separates two adjacent entities of one type. BIOES/IOBES (and BILOU's U-, L-):
S- (U-) is a one-token entity, E- (L-) ends one. IO: I- only, so adjacent entities of one type merge.
"""

from __future__ import annotations

import re
from enum import StrEnum

TAG = re.compile(r"^(O|[BIESLU]-.+)$")
"""A tag of any scheme: O, or a prefix and a type."""


class TagScheme(StrEnum):
    iob2 = "iob2"
    iob1 = "iob1"
    bioes = "bioes"
    io = "io"


def to_iob2(tags: list[str]) -> list[str]:
    """Tags of any of the schemes above as IOB2: an S-/U- or B- begins an entity; an I-, E- or L- continues
    the entity before it if that one has its type (and did not end with E-/L-/S-/U-), else begins one."""
    out: list[str] = []
    ended = True
    for tag in tags:
        if not TAG.match(tag):
            raise ValueError(tag)
        prefix, kind = (tag[:1], tag[2:]) if tag[1:2] == "-" else ("O", "")
        if prefix == "O" or tag == "O":
            out.append("O")
            ended = True
            continue
        continues = prefix in "IEL" and not ended and out[-1][2:] == kind
        out.append(("I-" if continues else "B-") + kind)
        ended = prefix in "ELSU"
    return out


def from_iob2(tags: list[str], scheme: TagScheme) -> list[str]:
    """IOB2 tags in another scheme, tag by tag: nothing is repaired, so strict scoring in that scheme still
    rejects what strict IOB2 would (an I- that begins nothing stays an I- or E-)."""
    if scheme == TagScheme.iob2:
        return list(tags)
    out = []
    for position, tag in enumerate(tags):
        prefix, kind = tag[:2], tag[2:]
        following = tags[position + 1] if position + 1 < len(tags) else "O"
        previous = tags[position - 1] if position else "O"
        if tag == "O":
            out.append(tag)
        elif scheme == TagScheme.io:
            out.append("I-" + kind)
        elif scheme == TagScheme.bioes:
            continued = following == "I-" + kind
            out.append(("B-" if continued else "S-") + kind if prefix == "B-" else ("I-" if continued else "E-") + kind)
        else:  # IOB1: B- only where an entity of the same type ends just before
            same_before = previous[2:] == kind and previous != "O"
            out.append(("B-" if prefix == "B-" and same_before else "I-") + kind)
    return out
