"""Where each answer comes from: every source decision of a call, made here, once.

``_request`` checks what the caller asked for (a :class:`~procnet._request.Query`);
this module decides how it is served (a :class:`Plan`), and the backend hands
the plan to the core as it is -- the core re-decides nothing:

- **socket source**: netlink sock_diag dumps, each table falling back to its
  ``/proc/net`` text ("auto"); only the text; only netlink. Netlink lists the
  caller's network namespace, so only this host's /proc can be served by it:
  any other root (a fixture tree, a container's /proc, captured text) is read
  as text.
- **owner source**: the ``/proc/PID/fd`` walk (through a Poller's cache when
  there is one) or the BPF iterator (native backend, this host's /proc).
  Under "auto" BPF serves when it pays: once loaded in this process, for a
  one-shot call on a host with :data:`BPF_BREAK_EVEN` sockets or more, and for
  a Poller whose polls keep reading more fd links than one BPF scan costs
  (:class:`PollerPlanner`).

- **network namespaces**: the caller's (``netns=None``), or the ones asked
  for, each listed from a sock_diag socket made inside it (the core setns()es
  a short-lived thread in; needs CAP_SYS_ADMIN, else the text of a member
  process's ``PID/net``), and which socket fds that no listed table holds
  the core names afterwards (``classify``) so that nothing is dropped silently.
"""
import os
from typing import Dict, FrozenSet, NamedTuple, Optional, Tuple

from . import _netns
from . import _tables as T
from ._errors import ProcNetError

# PN_SRC_* / PN_OWN_* / PN_Q_* in csrc/procnet.h
SRC_PROCFS, SRC_NETLINK = 1, 2
OWN_PROCFS, OWN_BPF = 1, 2
Q_TEXT_FALLBACK, Q_WALK_FALLBACK = 4, 8
CL_OTHER_NS, CL_ALL, CL_ASK_SOCKET = 1, 2, 4   # PN_CL_*
# pn_result.table_source: a table several namespaces served from both is both
SOURCE_NAMES = {SRC_PROCFS: "procfs", SRC_NETLINK: "netlink", SRC_PROCFS | SRC_NETLINK: "netlink+procfs"}
OWNER_SOURCE_NAMES = {0: "", OWN_PROCFS: "procfs", OWN_BPF: "bpf"}

SOURCE_CHOICES = ("auto", "procfs", "netlink")
OWNER_SOURCE_CHOICES = ("auto", "procfs", "bpf")

# A one-shot call loads the BPF program (~15 ms, once per process) only when
# the host has at least this many sockets: below it the /proc walk is as fast
# (benchmarks/test_bpf.py measures the break-even; BENCHMARKS.md has it).
BPF_BREAK_EVEN = 20000

# A Poller on "auto" moves to BPF after this many warm polls in a row each read
# more fd links than one BPF scan would cost: a link read costs ~4 µs, a BPF
# scan ~0.4 µs per socket plus a fixed part (benchmarks/test_bpf.py).
HEAVY_POLLS = 3
LINK_VS_BPF = 10
BPF_FIXED_SOCKETS = 2000


class Listing(NamedTuple):
    """One namespace to list (struct pn_netns)."""

    inode: int
    source: int                 # SRC_NETLINK or SRC_PROCFS
    enter: Optional[str]        # netlink: the file setns() enters; None: the caller's own
    net_dir: Optional[str]      # text: "PID/net" (or "net") under the root; None: no member


class Plan(NamedTuple):
    """How one call is served; the fields are what struct pn_query receives."""

    source: int                 # SRC_PROCFS or SRC_NETLINK
    text_fallback: bool         # netlink: a table whose dump fails is read from its text
    owner_source: int           # OWN_PROCFS, OWN_BPF, or 0 without owners
    walk_fallback: bool         # bpf: a scan that fails gives way to the walk
    listings: Optional[Tuple[Listing, ...]] = None   # None: the caller's namespace only
    self_netns: int = 0         # the caller's namespace (stamped when listings is None)
    classify: int = 0           # CL_*: which unlisted socket fds the core names
    found: Optional[Dict[int, "_netns.Found"]] = None   # what was discovered, for NetNS

    @property
    def flags(self) -> int:
        """The PN_Q_* bits this plan adds to the query's."""
        return (Q_TEXT_FALLBACK if self.text_fallback else 0) | (
            Q_WALK_FALLBACK if self.walk_fallback else 0)


def table_status(status: int, err: int) -> str:
    """Snapshot.tables' text for a PN_TABLE_* status (both backends)."""
    if status == 1:
        return "read"
    if status == 2:
        return "missing"
    if status == 0:
        return "error: no namespace could be listed"
    if err == 6:                        # ENXIO from file_read: a FIFO, device or socket
        return "error: not a regular file"
    return "error: " + os.strerror(err or 5)


def _choice(name: str, value: Optional[str], env: str, choices: Tuple[str, ...]) -> str:
    if value is None:
        value = os.environ.get(env) or "auto"
        if value not in choices:
            raise ProcNetError("%s=%r: must be one of %s" % (env, value, ", ".join(choices)))
    elif not isinstance(value, str) or value not in choices:
        raise ValueError("%s must be one of %s, not %r" % (name, ", ".join(choices), value))
    return value


def requested_sources(source: Optional[str], owner_source: Optional[str],
                      root: str) -> Tuple[str, str]:
    """The checked (source, owner_source) names of a call: argument, else the
    environment ($PROCNET_SOURCE, $PROCNET_OWNER_SOURCE), else "auto".

    Raises ProcNetError up front for what no plan could serve: netlink or BPF
    for a root that is not this host's /proc.
    """
    src = _choice("source", source, "PROCNET_SOURCE", SOURCE_CHOICES)
    own = _choice("owner_source", owner_source, "PROCNET_OWNER_SOURCE", OWNER_SOURCE_CHOICES)
    if src != "netlink" and own != "bpf":
        return src, own
    live = is_live_proc(root)
    if src == "netlink" and not live:
        raise ProcNetError("source='netlink' reads this host's sockets; it cannot serve "
                           "proc_root=%r (use source='procfs' or 'auto')" % root)
    if own == "bpf" and not live:
        raise ProcNetError("owner_source='bpf' finds the owners of this host's sockets; it cannot "
                           "serve proc_root=%r (use owner_source='procfs' or 'auto')" % root)
    return src, own


def is_live_proc(root: str) -> bool:
    """Is `root` this host's /proc? Only then can netlink or BPF serve it."""
    try:
        a, b = os.stat(root), os.stat("/proc")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def expected_sockets(root: str) -> int:
    """Sockets in use per <root>/net/sockstat: known before any listing, ~20 µs."""
    from ._pure.file_read import read_small     # regular files only, bounded
    try:
        data = read_small(os.path.join(root, "net", "sockstat"), 4096)
    except OSError:
        return 0
    for line in data.splitlines():
        if line.startswith(b"sockets:"):
            try:
                return int(line.split()[2])
            except (ValueError, IndexError):
                return 0
    return 0


def _socket_source(q) -> Tuple[int, bool]:
    if q.source == "procfs" or (q.source == "auto" and not is_live_proc(q.proc_root)):
        return SRC_PROCFS, False       # auto never mixes a fixture with this host's sockets
    return SRC_NETLINK, q.source == "auto"


def _bpf_or_walk(q, impl, want_bpf: bool) -> Tuple[int, bool]:
    """(owner source, walk fallback) under "auto": BPF if wanted and loadable."""
    if want_bpf and impl.bpf_load() is None:
        return OWN_BPF, True
    return OWN_PROCFS, False


def plan(q, impl, *, cached: bool = False, polling: bool = False, repeated: bool = False) -> Plan:
    """The Plan of one call of backend `impl` (the native or pure module).

    `cached`: a Poller's cache serves owners (lookup(), or a poll that its
    PollerPlanner keeps on the walk): "auto" means the cached walk.
    `polling`: a Poller's poll: a namespace asked for that is gone is listed
    as gone (its sockets closed), not an error.
    `repeated`: one-shot calls that a caller makes again and again (psutil's
    callers poll): under "auto" BPF whenever it loads, whatever the host's size.
    """
    return _namespaces(q, impl, _owners(q, impl, cached, repeated), polling)


def _owners(q, impl, cached: bool, repeated: bool = False) -> Plan:
    source, text_fallback = _socket_source(q)
    if not q.owners:
        return Plan(source, text_fallback, 0, False)
    if q.owner_source == "procfs":
        return Plan(source, text_fallback, OWN_PROCFS, False)
    if q.owner_source == "bpf":
        why = impl.bpf_load()
        if why is not None:
            raise ProcNetError("owner_source='bpf' is unavailable: %s" % why)
        return Plan(source, text_fallback, OWN_BPF, False)
    if cached or not is_live_proc(q.proc_root):
        return Plan(source, text_fallback, OWN_PROCFS, False)
    want = impl.bpf_loaded() or (impl.bpf_may_load() and (
        repeated or expected_sockets(q.proc_root) >= BPF_BREAK_EVEN))
    return Plan(source, text_fallback, *_bpf_or_walk(q, impl, want))


def _unfiltered(q) -> bool:
    return (q.states is None and q.lport < 0 and q.rport < 0 and q.uid < 0
            and not q.laddr_family and q.pids is None)


def _may_setns() -> bool:
    """Can this process enter other network namespaces (CAP_SYS_ADMIN)? Asked
    once per call, so that a process without it does not try every namespace."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return bool(int(line.split()[1], 16) >> 21 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _namespaces(q, impl, p: Plan, polling: bool = False) -> Plan:
    """Add which namespaces to list and which unlisted sockets to name."""
    root = q.proc_root
    live = is_live_proc(root)
    # the calling thread's: netlink dumps list the namespace of the thread that makes the socket
    self_ns = _netns.netns_of(root, "thread-self" if live else "self") or _netns.netns_of(root, "self")
    classify = 0
    if q.owners:
        classify = CL_OTHER_NS | (CL_ALL if q.tables == T.ALL_TABLES and _unfiltered(q) else 0)
        if live:
            classify |= CL_ASK_SOCKET      # live sockets only: a fixture's pids are not ours to ask
    # a family only sock_diag lists (MPTCP, vsock, XDP), read from text, holds
    # its sockets nowhere: then every socket no table holds must be looked at
    textless = q.tables & T.TEXTLESS_TABLES
    if q.netns is None:
        if textless and p.source == SRC_PROCFS and q.owners:
            classify |= CL_ALL
        return p._replace(self_netns=self_ns, classify=classify)
    found = _netns.discover(root, live)
    if q.netns == "all":
        chosen = sorted(found)
    else:
        if q.netns not in found:
            if polling:                # gone since the Poller began: its sockets closed
                return p._replace(listings=(Listing(q.netns, SRC_PROCFS, None, None),),
                                  self_netns=self_ns, classify=classify, found=found)
            raise ProcNetError("network namespace %d: no readable process is in it and no bind "
                               "mount under %s keeps it" % (q.netns, " or ".join(
                                   d for d, _ in _netns.BIND_DIRS)))
        chosen = [q.netns]
    enter_ok = p.source == SRC_NETLINK and impl.can_enter_netns() and _may_setns()
    listings = []
    for ns in chosen:
        f = found[ns]
        if ns == self_ns:              # the caller's own: no need to enter it
            listings.append(Listing(ns, p.source, None, "net"))
            continue
        net_dir = "%d/net" % f.pids[0] if f.pids else None
        enter = f.mounts[0] if f.mounts else "%s/%d/ns/net" % (root, f.pids[0])
        if enter_ok:
            listings.append(Listing(ns, SRC_NETLINK, enter, net_dir))
        else:
            listings.append(Listing(ns, SRC_PROCFS, None, net_dir))
    if textless and q.owners and any(li.source == SRC_PROCFS for li in listings):
        classify |= CL_ALL
    return p._replace(listings=tuple(listings), self_netns=self_ns, classify=classify, found=found)


class PollerPlanner:
    """A Poller's owner source under "auto": its cached walk, until polls keep
    reading so many fd links (many processes run all the time) that one BPF
    scan of every fd is cheaper; from then on BPF, for good -- switching back
    and forth would show the processes only BPF can see (whose fd links even
    root may not read) gaining and losing owners."""

    def __init__(self, impl) -> None:
        self._impl = impl
        self._warm = False
        self._heavy_polls = 0
        self._bpf_for_good = False

    def plan(self, q) -> Plan:
        """The plan of the next poll."""
        if q.owner_source != "auto":
            return plan(q, self._impl, polling=True)
        if self._bpf_for_good or self._heavy_polls >= HEAVY_POLLS:
            p = plan(q, self._impl, cached=True, polling=True)
            return p._replace(**dict(zip(("owner_source", "walk_fallback"),
                                         _bpf_or_walk(q, self._impl, is_live_proc(q.proc_root)))))
        return plan(q, self._impl, cached=True, polling=True)

    def lookup_plan(self, q) -> Plan:
        """lookup(): under "auto" the cache serves."""
        return plan(q, self._impl, cached=True, polling=True)

    def note(self, q, p: Plan, served_by: str, fds_read: int) -> None:
        """After a poll: count warm polls that read more links than one BPF scan
        of the host would cost (the first poll fills the cache and does not count)."""
        self._bpf_for_good = self._bpf_for_good or served_by == "bpf"
        if p.owner_source != OWN_PROCFS or not self._impl.bpf_may_load():
            self._heavy_polls = 0
            return
        if not self._warm:
            self._warm = True
            return
        heavy = fds_read * LINK_VS_BPF > expected_sockets(q.proc_root) + BPF_FIXED_SOCKETS
        self._heavy_polls = self._heavy_polls + 1 if heavy else 0


def tracking_refusal(q) -> Optional[str]:
    """Why a Poller of `q` cannot track changes in the kernel (None: it may
    try to load the programs). Tracking watches this system's processes by
    their global pids, and keeps owners from its cache of the /proc walk."""
    if not is_live_proc(q.proc_root):
        return "proc_root %s is not this system's live /proc" % q.proc_root
    if q.owner_source == "bpf":
        return "tracking keeps owners from the /proc walk's cache, and owner_source='bpf' was asked"
    return None


def tracking_query(q):
    """The query of a tracking Poller's full polls: the /proc walk, whose
    holders are what the tracker watches. (Its worker threads make no
    records: they close no socket, and their exits are not a process's.)"""
    return q._replace(owner_source="procfs")


def tracked_netns(q, p: Plan) -> Optional[FrozenSet[int]]:
    """The namespace inodes a tracking Poller lists (None: any, or unknown)."""
    if q.netns == "all":
        return None
    if p.listings is not None:
        return frozenset(li.inode for li in p.listings)
    return frozenset((p.self_netns,)) if p.self_netns else None


def bpf_status(impl) -> Tuple[bool, str]:
    """(available, reason) of the BPF owner source for backend `impl`; loads it if needed."""
    why = impl.bpf_load()
    return (True, "loaded") if why is None else (False, why)
