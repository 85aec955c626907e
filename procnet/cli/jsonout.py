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

from .._records import Connection, Snapshot
from .._version import __version__


def document(snap: Snapshot, conns: Sequence[Connection]) -> Dict[str, Any]:
    """The JSON-ready document: how complete the snapshot is, then `conns` (its selected sockets).

    Its keys are fields.DOCUMENT_KEYS, in that order (--help lists them).
    """
    return {
        "version": __version__,
        "backend": snap.backend,
        "time": round(time.time(), 6),
        "complete": snap.complete,
        "denied_pids": list(snap.denied_pids),
        "pids_hidden": snap.pids_hidden,
        "skipped": dict(snap.skipped),
        "tables": dict(snap.tables),
        "sources": dict(snap.sources),            # which source served each table
        "processes": snap.processes,
        "owner_source": snap.owner_source,
        "namespaces": [ns._asdict() for ns in snap.namespaces.values()],
        "unlisted": dict(snap.unlisted),
        "other_netns": {str(k): v for k, v in snap.other_netns.items()},
        "connections": [c.as_dict() for c in conns],
    }


def dumps(doc: Dict[str, Any]) -> str:
    """One line of JSON (ASCII; lone surrogates escaped), newline-terminated."""
    return json.dumps(doc, separators=(",", ":")) + "\n"
