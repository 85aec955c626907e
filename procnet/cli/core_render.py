"""netstat's table and --json rendered by the C core: one call takes the snapshot and writes the rows.

At tens of thousands of sockets, building a Connection per socket and
formatting its row in Python is most of a run's time and memory. With the
native backend and options the core renders exactly as cli/netstat_render.py
(numeric hosts, ports and users; the filters the core or the renderer apply)
or cli/jsonout.py (any table), :func:`show` takes the snapshot and has
csrc/netstat_render.c or csrc/json_render.c write the rows straight to
stdout's fd, from the flat records, through a fixed buffer; for JSON Python
writes the document's other keys around them, as jsonout.document() has them.
Every other case (names, --port cut in Python, several --user, -c, --events,
a stdout Python cannot hand over as UTF-8 bytes) stays with Python;
tests/test_render.py checks both give the same bytes.
"""
import codecs
import errno
import os
from typing import Any, Callable, Dict, Optional, Tuple

from .. import _backend
from .. import _tables as T
from .args import Options
from .streams import Output, WriteError

__all__ = ["usable", "show"]

# the tables netstat_render.c lays out (sections inet, unix, vsock, xdp)
_TABLES = frozenset(T.TABLES) - {"packet", "netlink"}
#: tests and benchmarks switch the core's renderer off to compare with cli/netstat_render.py
ENABLED = True


def usable(opts: Options, out: Output) -> bool:
    """Can the core render this run's table, exactly as cli/netstat_render.py would?"""
    if not ENABLED or opts.events or opts.interval is not None:
        return False
    if len(opts.uids) > 1:
        return False
    if not opts.json:          # JSON has no names and every table; the table has sections
        if not (opts.numeric_hosts and opts.numeric_ports and (opts.numeric_users or not opts.extend)):
            return False
        if not (opts.tables <= _TABLES and set(opts.other_sections) <= {"vsock", "xdp"}):
            return False       # a family or section netstat_render.c does not know: cli/netstat_render.py's
    from .selection import api_arguments
    _, port_in_core = api_arguments(opts, opts.tables)
    if opts.ports and not port_in_core:
        return False
    if out.fd is None or out.buffer is None or out.stream is None:
        return False
    try:
        if codecs.lookup(out.encoding).name != "utf-8":
            return False
    except LookupError:
        return False
    try:
        name, _ = _backend.resolve(opts.backend)
    except Exception:        # the caller's own path reports an unusable backend
        return False
    return name == "native"


def show(opts: Options, out: Output, notes: Callable[[Any], None]) -> None:
    """One snapshot, its notes said by `notes(snapshot)` (stderr, before the output), then
    the table or the JSON document written by the core. Raises WriteError or
    BrokenPipeError as Output.write."""
    from .. import _api
    from .._records import Snapshot
    from .._plan import plan
    from .._request import make_query
    from .selection import api_arguments

    kw, _ = api_arguments(opts, opts.tables)
    del kw["backend"]
    q = make_query(sorted(T.EXACT_KIND[t] for t in opts.tables), **kw)
    name, impl = _backend.resolve(opts.backend)      # the native backend (usable())
    p = plan(q, impl)
    flags = (impl.RENDER_EXTEND if opts.extend else 0) | (
        impl.RENDER_PROGRAM if opts.program else 0)
    if opts.inet_section:
        flags |= impl.RENDER_SECTIONS["inet"]
    if opts.unix_section:
        flags |= impl.RENDER_SECTIONS["unix"]
    for family in opts.other_sections:
        flags |= impl.RENDER_SECTIONS[family]

    def snapshot(meta: Dict[str, Any]) -> Snapshot:
        _api._namespace_meta(q, p, meta)
        _api._check_meta(q, meta)
        snap = Snapshot((), backend=name, **meta)
        notes(snap)
        return snap

    def before(meta: Dict[str, Any], records: Any) -> Optional[Dict[int, str]]:
        namespaces = snapshot(meta).namespaces
        if len(namespaces) < 2:
            return None
        from .fields import Formatter       # only for the Net namespace column
        return column_names(namespaces, Formatter(opts))

    def around(meta: Dict[str, Any], records: Any) -> Tuple[bytes, bytes]:
        from .jsonout import document, dumps
        text = dumps(document(snapshot(meta), ())).encode("ascii")
        tail = b"]}\n"
        if not text.endswith(b'"connections":[' + tail):       # the last key: rows go between
            raise RuntimeError("procnet: jsonout.document() no longer ends with its connections")
        return text[:-len(tail)], tail

    try:
        out.stream.flush()             # nothing of Python's may follow the core's bytes
    except (OSError, ValueError) as e:
        raise WriteError(getattr(e, "strerror", None) or str(e)) from None
    with _api._root_errors(q):
        if opts.json:
            err = impl.render_json(q, p, out.fd, impl.RENDER_MODES[opts.mode], around)
        else:
            err = impl.render_table(q, p, out.fd, flags, impl.RENDER_MODES[opts.mode], before)
    if err == errno.EPIPE:
        raise BrokenPipeError(err, os.strerror(err))
    if err:
        raise WriteError(os.strerror(err))


def column_names(namespaces: Dict[int, Any], fmt: Any) -> Optional[Dict[int, str]]:
    """The Net namespace column's text per namespace (cli/netstat_render.py Table.render), or None
    when one namespace is shown (no column)."""
    if not namespaces or len(namespaces) < 2:
        return None
    return {ns.inode: fmt.path(ns.names[0]) if ns.names else str(ns.inode)
            for ns in namespaces.values()}
