"""Tag schemes of token classification: whatever scheme a file uses is read as IOB2 (what bertkit trains on),
and IOB2 is written back in the scheme asked for.

IOB2: B- begins every entity, I- continues it. IOB1 (CoNLL-2003's files): I- begins an entity too, unless it
continues one of its type; B- only separates two adjacent entities of one type. BIOES/IOBES (and BILOU's U-, L-):
S- (U-) is a one-token entity, E- (L-) ends one. IO: I- only, so adjacent entities of one type merge.
"""

from __future__ import annotations

from enum import StrEnum

from seqeval.metrics.sequence_labeling import get_entities


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
    """IOB2 tags in another scheme (the same entities)."""
    if scheme == TagScheme.iob2:
        return list(tags)
    out = ["O"] * len(tags)
    previous_end, previous_kind = -2, None
    for kind, first, last in get_entities(list(tags)):
        inside = "I-" + kind
        for position in range(first, last + 1):
            out[position] = inside
        if scheme == TagScheme.bioes:
            if first == last:
                out[first] = "S-" + kind
            else:
                out[first], out[last] = "B-" + kind, "E-" + kind
        elif scheme == TagScheme.iob1 and previous_end == first - 1 and previous_kind == kind:
            out[first] = "B-" + kind  # IOB1's B-: only where an entity of the same type ends just before
        previous_end, previous_kind = last, kind
    return out
