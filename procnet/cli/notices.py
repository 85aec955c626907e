"""What the command line says on stderr about a snapshot that missed something.

Three notes, each one line: owners it could not see (netstat's "Not all
processes could be identified", with -p); lines it skipped or tables it
could not read (as netstat's "warning, got bogus tcp line"), from
Snapshot.skipped and Snapshot.tables; and sockets no listed table holds --
those of other network namespaces, namespaces that could not be listed,
families this kernel cannot list (Snapshot.unlisted, other_netns, namespaces).
"""
import os
from typing import List, Optional

from .._records import Snapshot

# Tables a kernel may lack the sock_diag support (or the text) to list, while
# their sockets may still exist (vsock, xdp): said when asked for and missing.
_DIAG_ONLY = frozenset(("mptcp", "mptcp6", "sctp", "sctp6", "vsock", "xdp"))

PARTIAL_WARNING = ("(Not all processes could be identified, non-owned process info will not be "
                   "shown, you would have to be root to see it all.)")
# root too can be refused a process's fds (an LSM, a process beyond its reach)
ROOT_PARTIAL_WARNING = "(Not all processes could be identified: the fds of pid %s could not be read.)"


def owners_note(snap: Snapshot) -> Optional[str]:
    """The owners-unknown warning, or None when every process could be read."""
    if not (snap.denied_pids or snap.pids_hidden):
        return None
    if os.geteuid() == 0 and snap.denied_pids and not snap.pids_hidden:
        pids = ", ".join(map(str, snap.denied_pids[:10])) + (", ..." if len(snap.denied_pids) > 10 else "")
        return ROOT_PARTIAL_WARNING % pids
    return PARTIAL_WARNING


def data_note(snap: Snapshot) -> Optional[str]:
    """``procnet: warning: ...`` when lines were skipped or a table could not be read; else None.

    e.g. ``procnet: warning: skipped 3 malformed lines (tcp: 2, unix: 1); could not read
    tcp6 (Permission denied)``.
    """
    parts: List[str] = []
    skipped = {t: n for t, n in snap.skipped.items() if n}
    if skipped:
        total = sum(skipped.values())
        parts.append("skipped %d malformed line%s (%s)" % (
            total, "" if total == 1 else "s", ", ".join("%s: %d" % kv for kv in sorted(skipped.items()))))
    failed = sorted((t, st) for t, st in snap.tables.items() if st.startswith("error"))
    if failed:
        parts.append("could not read %s" % ", ".join(
            "%s (%s)" % (t, st.split(":", 1)[1].strip() if ":" in st else st) for t, st in failed))
    unlistable = sorted(t for t, st in snap.tables.items() if st == "missing" and t in _DIAG_ONLY)
    if unlistable:
        parts.append("cannot list %s (neither this kernel's sock_diag nor the /proc text has %s)" % (
            ", ".join(unlistable), "it" if len(unlistable) == 1 else "them"))
    if not parts:
        return None
    return "procnet: warning: " + "; ".join(" ".join(p.split()) for p in parts)


def netns_note(snap: Snapshot) -> Optional[str]:
    """What the listing left out, by namespace and family; None when nothing.

    e.g. ``(412 sockets in 9 other network namespaces not shown: use --all-netns)``.
    """
    parts: List[str] = []
    others = snap.other_netns
    if others:
        n = sum(others.values())
        parts.append("%d socket%s in %d other network namespace%s not shown: use --all-netns" % (
            n, "" if n == 1 else "s", len(others), "" if len(others) == 1 else "s"))
    failed = sorted(ns for ns in snap.namespaces.values() if not ns.source)
    if failed:
        parts.append("network namespace%s not listed: %s" % ("" if len(failed) == 1 else "s", ", ".join(
            "%s (%s)" % (_name(ns), ns.error or "unknown") for ns in failed[:5]) + (
                ", ..." if len(failed) > 5 else "")))
    n_other = sum(others.values())
    rest = sum(snap.unlisted.values()) - n_other
    if rest > 0:
        parts.append("%d socket%s of a family no table lists here (%s)" % (
            rest, "" if rest == 1 else "s", ", ".join(
                "%s: %d" % kv for kv in sorted(snap.unlisted.items()))))
    if not parts:
        return None
    return "(%s)" % "; ".join(parts)


def _name(ns) -> str:
    from .fields import escape_field
    return escape_field(ns.names[0]) if ns.names else str(ns.inode)
