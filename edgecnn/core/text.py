"""Strings from files are shown, never obeyed.

A label, a tensor name, a host name or a message read from a file reaches the user's terminal
through ``shown``: every character that is not printable is written as an escape (``\\x1b``,
``\\n``, ``\\u202e``), so an ``ESC ] 0 ; ... BEL`` in a manifest's label cannot retitle the
terminal, a newline cannot forge a second line of output, and a right-to-left override cannot
reorder what is read. "Not printable" is Python's own ``str.isprintable`` (control and format
characters, line and paragraph separators, unassigned and private-use code points; a plain space
is printable).

Validation is stricter where such characters cannot be meant: ``unwanted_char`` finds the
characters a label or a name may never hold (C0/C1 controls, DEL, line and paragraph
separators, the bidirectional embeddings, overrides and isolates), and the contract refuses
those fields (``edgecnn.contract.checks``). Other format characters (the zero-width joiner of an
emoji sequence) are allowed in a label and only escaped on screen.

``edgecnn.errors`` sits below this package and escapes its one-line messages by the same rule.
"""
from __future__ import annotations

import unicodedata
from typing import Optional

# Bidirectional embeddings, overrides and isolates (the "Trojan Source" characters).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
SHOWN_LIMIT = 200  # characters of one field on screen; a longer one ends in '...'


def _escape(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{o:02x}")
    return f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def shown(value, limit: Optional[int] = SHOWN_LIMIT) -> str:
    """``value`` as text safe to print on one terminal line: every character that is not printable
    escaped, and at most ``limit`` characters of the original (None: no limit)."""
    s = value if isinstance(value, str) else str(value)
    cut = limit is not None and len(s) > limit
    if cut:
        s = s[:limit]
    if not s.isprintable():
        s = "".join(ch if ch.isprintable() else _escape(ch) for ch in s)
    return s + "..." if cut else s


def unwanted_char(s: str) -> Optional[str]:
    """The first character of ``s`` that a label or name may never hold (see the module doc), or None."""
    for ch in s:
        if ch in BIDI_CONTROLS or (not ch.isprintable() and unicodedata.category(ch) in ("Cc", "Zl", "Zp")):
            return ch
    return None


def describe_char(ch: str) -> str:
    """'ESC (\\x1b)', 'a line break (\\n)', 'U+202E RIGHT-TO-LEFT OVERRIDE (\\u202e)' for a message."""
    names = {"\x1b": "ESC", "\x07": "BEL", "\n": "a line break", "\r": "a carriage return", "\t": "a tab",
             "\x00": "NUL", "\x7f": "DEL"}
    name = names.get(ch) or unicodedata.name(ch, f"U+{ord(ch):04X}")
    return f"{name} ({_escape(ch)})"
