"""--json: one JSON document per snapshot (per line with -c).

Names and paths are kept exactly: procnet decodes them with surrogateescape,
so bytes that are not UTF-8 are lone surrogates; json.dumps with its default
ensure_ascii=True writes them as \\udcXX escapes (pure ASCII output, nothing
that could reach a terminal raw), and json.loads gives the same string back,
which os.fsencode() turns into the original bytes.
"""
import json
import time
from typing import Any, Dict, Sequence

from .._contract import Connection, Snapshot
from .._version import __version__


def document(snap: Snapshot, conns: Sequence[Connection], tables: Dict[str, str]) -> Dict[str, Any]:
    """The JSON-ready document: completeness of the snapshot, then every connection.

    `tables` is snapshot.tables restricted to what the options show.
    """
    skipped = {t: n for t, n in snap.skipped.items() if t in tables}
    doc: Dict[str, Any] = {
        "version": __version__,
        "backend": snap.backend,
        "time": round(time.time(), 6),
        "complete": not snap.denied_pids and not snap.pids_hidden and not skipped
        and all(st in ("read", "missing") for st in tables.values()),
        "denied_pids": list(snap.denied_pids),
        "pids_hidden": snap.pids_hidden,
        "skipped": skipped,
        "tables": tables,
    }
    sources = getattr(snap, "sources", None)     # which source served each table, if known
    if sources:
        doc["sources"] = {t: s for t, s in sources.items() if t in tables}
    doc["processes"] = snap.processes
    doc["owner_source"] = getattr(snap, "owner_source", "")
    doc["connections"] = [c.as_dict() for c in conns]
    return doc


def dumps(doc: Dict[str, Any]) -> str:
    """One line of JSON (ASCII; lone surrogates escaped), newline-terminated."""
    return json.dumps(doc, separators=(",", ":")) + "\n"
