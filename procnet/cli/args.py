"""The command line's options: netstat's flags, procnet's filters, and their checks.

``parse(argv)`` returns an :class:`Options` or raises :class:`UsageError` with a
one-line message naming the bad argument (the caller prints it, exits 2).
Flag clusters are expanded first, the way netstat's getopt reads them, so that
``-c`` works anywhere in a cluster: ``-tulpnc``, ``-ctulpn``, ``-tulpnc 2`` and
``-tulpnc2`` all mean "these flags, continuous" (2 s in the last two).
"""
import argparse
import os
import re
from typing import TYPE_CHECKING
from typing import FrozenSet, List, NamedTuple, NoReturn, Optional, Sequence, Set, Tuple, Union

from .. import _tables as T

if TYPE_CHECKING:
    from .serve import ExportOptions

USAGE = "procnet [-tuwxlanpe46] [-c [SECONDS]] [--json] [filters]"

DESCRIPTION = """\
Which process owns this socket? netstat's listing of TCP, UDP, raw and unix
sockets, read from /proc by procnet's C core (or its pure-Python twin).

With no flags it lists what netstat lists: non-listening inet and unix sockets.
Flags combine as netstat's do (-tulpn, -atnp, -xap)."""

EPILOG = """\
examples:
  procnet -tulpn                 which process listens on which TCP/UDP port
  procnet -tlpn --port 8080      who listens on 8080
  procnet -atnp                  every TCP socket and its processes, numeric
  procnet -xap                   unix sockets in every state, with processes
  procnet -anp --pid 812         every socket process 812 holds
  procnet -tn --state ESTABLISHED --user www-data
  procnet -tulpnc 2              the same listing every 2 seconds (Ctrl-C stops)
  procnet -Mlnp                  MPTCP listeners and their processes (ss -Mlnp)
  procnet -San --vsock --xdp     SCTP, vsock and AF_XDP sockets (ss -S, --vsock, --xdp)
  procnet -tlnp --json | jq -r '.connections[] | "\\(.laddr.port) \\(.owners[].pid)"'
  procnet -tnp --json -c 5 | jq -c '.connections | length'   (one line per refresh)

differences from netstat (net-tools):
  - every process holding a socket is listed (812/nginx,813/nginx), not one;
    the name is the kernel's (comm, 15 bytes), not argv[0]'s basename
  - IPv6 addresses are bracketed where a port follows: [::1]:8080, [::]:*
  - addresses are never truncated (-W is accepted and changes nothing)
  - -u also lists UDP-Lite (netstat: -U); Proto says udplite, not udpl
  - unix sockets: no RefCnt column (not in procnet's records)
  - families netstat does not list, with ss's flags: -M/--mptcp, -S/--sctp
    (sctp associations show their own states: COOKIE_WAIT, SHUTDOWN_SENT...),
    --vsock (addresses CID:port) and --xdp (interface:queue), each in a
    section of its own after the inet one
  - control characters in names and paths are escaped (\\n, \\t, \\x1b,
    invalid UTF-8 as \\xNN; a backslash as \\\\), so no name can forge a row
  - host names are looked up for at most ~0.5 s, then shown numerically;
    loopback addresses are named from /etc/hosts only, never from DNS
  - Recv-Q/Send-Q are procnet's fields: where the tables are read over netlink
    (the default for the live /proc), a listener's Send-Q is its backlog limit,
    as ss shows it; netstat (/proc/net text, PROCNET_SOURCE=procfs) shows 0

%(json)s

stderr: "procnet: warning: skipped N malformed lines (TABLE: N)" or "...could
not read TABLE (reason)" when the output lacks what a table held (netstat:
"warning, got bogus tcp line"); with -p, a note when the owners of some
sockets could not be identified. A closed or full stderr is no error.

exit status: 0 success, also when -c is stopped by Ctrl-C (the way it ends)
or the reader of the output goes away (| head, even while -c prints nothing);
1 error: an unusable --proc-root, or "procnet: write error: REASON" (a full
disk, a closed stdout); 2 usage error; 130 a run without -c interrupted by
Ctrl-C (SIGINT), as shells report a command killed by it.
environment: PROCNET_BACKEND=native|pure (as --backend),
PROCNET_SOURCE=auto|netlink|procfs (where the socket tables are read)."""


def _keys(label: str, keys: Sequence[str], note: str = "", placeholder: str = "") -> str:
    """`label: {"k1", "k2", ...} note`, wrapped under the opening brace."""
    import textwrap
    words = ['"%s"' % k for k in keys]
    if placeholder:
        words.insert(1, placeholder)
    text = "{%s}%s" % (", ".join(words), " " + note if note else "")
    head = "  %-12s" % (label + ":")
    return textwrap.fill(text, 79, initial_indent=head, subsequent_indent=" " * (len(head) + 1),
                         break_on_hyphens=False)


def json_help() -> str:
    """The --help text on --json: every key it writes, from cli.fields (the writers' keys)."""
    from . import fields                  # only for --help: a run needs none of this
    conn = fields.CONNECTION_KEYS
    event = [k for k in fields.EVENT_KEYS if k not in conn]
    return "\n".join([
        "JSON (--json): one document per run; with -c, one per line per refresh.",
        "Owners are always looked up. The keys:",
        _keys("document", fields.DOCUMENT_KEYS,
              '("complete": false when anything was missed)'),
        _keys("connection", conn, '(each of "connections": the fields of procnet.Connection)'),
        _keys("address", fields.ADDRESS_KEYS,
              '(an inet "laddr", "raddr"; a unix "laddr" is the path, "@name" if abstract)'),
        _keys("vsock", fields.VSOCK_ADDRESS_KEYS, '(a vsock "laddr", "raddr")'),
        _keys("xdp", fields.XDP_ADDRESS_KEYS, '(an AF_XDP "laddr"; its "raddr" is null)'),
        _keys("owner", fields.OWNER_KEYS, '(each of "owners": one per fd)'),
        _keys("namespace", fields.NETNS_KEYS, '(each of "namespaces": one per network '
              'namespace listed; "unlisted": sockets no listed table holds, per protocol; '
              '"other_netns": inode -> sockets of namespaces not listed)'),
        _keys("event", event, '(--events --json: one line per change; "old_owners" in '
              '"owners" events only)', placeholder="every connection key"),
    ])


# EPILOG's %(json)s is filled in by _Parser.format_help, only when help is asked for.

# One-letter flags that take no value, as netstat spells them ('c' is separate).
_FLAG_LETTERS = "tuwxMSlanpe46W"
# A cluster of those letters with at most an inline -c value: -tulpnc, -ctl, -tc2, -c0.5t
_CLUSTER = re.compile(r"-(?:[%s]|c(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)?)+\Z" % _FLAG_LETTERS)
_CLUSTER_PART = re.compile(r"c([0-9]+(?:\.[0-9]*)?|\.[0-9]+)?|[%s]" % _FLAG_LETTERS)
# A value that argparse would take for an option (it has -4 and -6, so "-1" is one to it).
_NEGATIVE = re.compile(r"-[0-9.]")

# The tables a flag selects, by name (procnet's table names = the Proto column).
TCP = ("tcp", "tcp6")
UDP = ("udp", "udp6", "udplite", "udplite6")
RAW = ("raw", "raw6")
MPTCP = ("mptcp", "mptcp6")
SCTP = ("sctp", "sctp6")
INET_DEFAULT = TCP + UDP + RAW
PROTO_CHOICES = INET_DEFAULT + ("icmp", "icmp6", "unix") + MPTCP + SCTP + ("vsock", "xdp")
V6 = frozenset(n for n in PROTO_CHOICES if n.endswith("6"))
# families with sections of their own (neither inet nor unix; -4/-6 do not apply)
OTHER_SECTIONS = ("vsock", "xdp")
INET = frozenset(PROTO_CHOICES) - {"unix"} - set(OTHER_SECTIONS)

_STATE_ALIASES = {"LISTENING": "LISTEN", "ESTAB": "ESTABLISHED", "UNCONN": "NONE",
                  "UNCONNECTED": "NONE", "CLOSED": "CLOSE", "SYN_RECEIVED": "SYN_RECV"}


class UsageError(Exception):
    """A bad command line; the message is one line naming the argument."""


class HelpRequested(Exception):
    """-h/--help: `text` is the help, for the caller to write (and exit 0)."""

    def __init__(self, text: str) -> None:
        super().__init__("help requested")
        self.text = text


class Options(NamedTuple):
    """What the command line asks for, validated."""

    tables: FrozenSet[str]          # Proto names to show
    inet_section: bool              # print the "Active Internet connections" section
    unix_section: bool              # print the "Active UNIX domain sockets" section
    mode: str                       # "listening", "connected" (netstat's default) or "all"
    numeric_hosts: bool
    numeric_ports: bool
    numeric_users: bool
    program: bool                   # -p
    extend: bool                    # -e
    interval: Optional[float]       # -c; None: once
    json: bool
    events: bool                    # --events: one line per change (open/close/owners)
    ports: Tuple[int, ...]          # --port (local or remote)
    pids: Tuple[int, ...]           # --pid
    uids: Tuple[int, ...]           # --user, resolved
    states: Tuple[str, ...]         # --state, canonical names
    backend: Optional[str]
    proc_root: str
    version: bool
    export: "Optional[ExportOptions]" = None   # --serve / --format prom (cli/serve.py)
    other_sections: Tuple[str, ...] = ()       # "vsock", "xdp": sections of their own
    netns: Union[None, str, int] = None        # --all-netns: "all"; --netns: a pid or a path


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message.splitlines()[0] if message else "bad usage")

    def format_help(self) -> str:
        if self.epilog and "%(json)s" in self.epilog:
            self.epilog = self.epilog % {"json": json_help()}
        return super().format_help()

    def print_help(self, file: object = None) -> NoReturn:  # type: ignore[override]
        # written by the caller, whose writes report a full or closed stdout
        raise HelpRequested(self.format_help())


# Numbers on the command line: ASCII digits only (str.isdigit() and float() also
# take fullwidth and other scripts' digits), and short enough that int() never
# meets its digit limit.
_UINT = re.compile(r"[0-9]{1,20}\Z")
_DECIMAL = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})\Z")


def _shown(text: str) -> str:
    """`text` quoted for a message, cut short if long (an argument may be anything)."""
    return repr(text) if len(text) <= 40 else "%r... (%d characters)" % (text[:32], len(text))


def _seconds(text: str) -> float:
    if not _DECIMAL.match(text):
        raise argparse.ArgumentTypeError("invalid interval %s: seconds expected, e.g. 1 or 0.5" % _shown(text))
    v = float(text)
    if not 0 < v <= 86400:
        raise argparse.ArgumentTypeError("invalid interval %s: must be > 0 and at most 86400" % _shown(text))
    return v


def _port(text: str) -> int:
    if not _UINT.match(text) or int(text) > 65535:
        raise argparse.ArgumentTypeError("invalid port %s: a number 0..65535 expected" % _shown(text))
    return int(text)


def _pid(text: str) -> int:
    if not _UINT.match(text) or not 0 < int(text) <= 0x7FFFFFFF:
        raise argparse.ArgumentTypeError("invalid pid %s: a positive process id expected" % _shown(text))
    return int(text)


def _netns(text: str) -> Union[str, int]:
    """--netns: a pid (ASCII digits), a path (with a "/"), or a name under
    /run/netns (ip netns) or /run/docker/netns."""
    if _UINT.match(text) and 1 << 22 < int(text) <= 0xFFFFFFFF:
        return int(text)                  # above any pid: a namespace inode (4026532481)
    if _UINT.match(text) or re.match(r"[-+][0-9]+\Z", text):
        return _pid(text)                 # (a signed number is a bad pid, not a name)
    if "/" in text:
        return text
    if text and text not in (".", "..") and "\0" not in text:
        for folder in ("/run/netns", "/run/docker/netns"):
            path = os.path.join(folder, text)
            if os.path.exists(path):
                return path
    raise argparse.ArgumentTypeError("no network namespace named %s (see ip netns list)" % _shown(text))


def _user(text: str) -> int:
    if _UINT.match(text) or re.match(r"[-+]?[0-9]+\Z", text):
        if not _UINT.match(text) or int(text) > 0xFFFFFFFF:
            raise argparse.ArgumentTypeError("invalid uid %s: a number 0..4294967295 expected"
                                             % _shown(text))
        return int(text)
    import pwd
    try:
        return pwd.getpwnam(text).pw_uid
    except (KeyError, ValueError):        # ValueError: a NUL in the name
        raise argparse.ArgumentTypeError("unknown user %s" % _shown(text))


def _state(text: str) -> str:
    name = text.upper().replace("-", "_")
    name = _STATE_ALIASES.get(name, name)
    if name not in T.ALL_STATES:
        raise argparse.ArgumentTypeError("unknown state %s (valid: %s)" % (
            _shown(text), ", ".join(sorted(T.ALL_STATES))))
    return name


def _proto(text: str) -> str:
    if text not in PROTO_CHOICES:
        raise argparse.ArgumentTypeError("unknown proto %s (valid: %s)" % (_shown(text), ", ".join(PROTO_CHOICES)))
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (used by parse(); also for --help)."""
    p = _Parser(prog="procnet", usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    g = p.add_argument_group("sockets (none given: inet and unix, as netstat)")
    g.add_argument("-t", "--tcp", action="store_true", help="TCP (tcp, tcp6)")
    g.add_argument("-u", "--udp", action="store_true", help="UDP and UDP-Lite (udp, udp6, udplite, udplite6)")
    g.add_argument("-w", "--raw", action="store_true", help="raw sockets (raw, raw6)")
    g.add_argument("-x", "--unix", action="store_true", help="unix domain sockets")
    g.add_argument("-M", "--mptcp", action="store_true", help="MPTCP (mptcp, mptcp6), as ss -M")
    g.add_argument("-S", "--sctp", action="store_true",
                   help="SCTP endpoints and associations (sctp, sctp6), as ss -S")
    g.add_argument("--vsock", action="store_true", help="vsock (AF_VSOCK) sockets, as ss --vsock")
    g.add_argument("--xdp", action="store_true", help="AF_XDP sockets, as ss --xdp")
    g.add_argument("-4", "--inet", dest="v4", action="store_true", help="IPv4 only")
    g.add_argument("-6", "--inet6", dest="v6", action="store_true", help="IPv6 only")
    g = p.add_argument_group("states (none given: non-listening sockets, as netstat)")
    g.add_argument("-l", "--listening", action="store_true",
                   help="listening sockets only (and unconnected UDP/raw)")
    g.add_argument("-a", "--all", action="store_true", help="listening and non-listening sockets")
    g = p.add_argument_group("output")
    g.add_argument("-n", "--numeric", action="store_true", help="no host, port or user names")
    g.add_argument("--numeric-hosts", action="store_true", help="no host names")
    g.add_argument("--numeric-ports", action="store_true", help="no service names")
    g.add_argument("--numeric-users", action="store_true", help="no user names")
    g.add_argument("-p", "--program", action="store_true", help="PID/Program name of every owner")
    g.add_argument("-e", "--extend", action="store_true", help="User and Inode columns")
    g.add_argument("-W", "--wide", action="store_true", help="accepted for netstat habits: never truncated")
    g.add_argument("-c", "--continuous", dest="interval", nargs="?", const=1.0, type=_seconds,
                   metavar="SECONDS", help="refresh every SECONDS (default 1) until interrupted")
    g.add_argument("--json", action="store_true", help="JSON (with -c: one line per refresh)")
    g.add_argument("--events", action="store_true",
                   help="one line per change instead of whole tables: open, close, owners "
                        "(a socket's owner set changed); with -c, every change since the "
                        "last refresh (the first lists every socket as opened): EVENT PROTO "
                        "LOCAL REMOTE STATE OWNERS [was OWNERS], spelled as in the table, a "
                        "space inside a value as \\x20; JSON lines with --json")
    g = p.add_argument_group("filters", "beyond netstat; combinable; any of them without -l or -a implies -a")
    g.add_argument("--port", action="append", type=_port, default=[], metavar="N",
                   help="local or remote port N (repeatable: any of them)")
    g.add_argument("--pid", action="append", type=_pid, default=[], metavar="N",
                   help="sockets held by process N; the PID column then lists only "
                        "these processes (repeatable)")
    g.add_argument("--user", action="append", type=_user, default=[], metavar="NAME|UID",
                   help="sockets of this user: the socket's uid, as -e shows it (unix "
                        "sockets read from /proc/net text carry none and never match; "
                        "repeatable)")
    g.add_argument("--state", action="append", type=_state, default=[], metavar="NAME",
                   help="LISTEN, ESTABLISHED, TIME_WAIT, NONE (unconnected), CONNECTED... "
                        "(case-insensitive; repeatable)")
    g.add_argument("--proto", action="append", type=_proto, default=[], metavar="NAME",
                   help="exactly this Proto column: %s (repeatable)" % ", ".join(PROTO_CHOICES))
    g = p.add_argument_group("source")
    g.add_argument("--backend", choices=("native", "pure"),
                   help="procnet's C core or its pure-Python twin (default: native if built)")
    g.add_argument("--proc-root", default="/proc", metavar="PATH",
                   help="a procfs mount or a copy laid out like one (default /proc): "
                        "a container's /proc, a fixture tree")
    where = g.add_mutually_exclusive_group()      # every namespace, or one
    where.add_argument("--all-netns", action="store_true",
                       help="every network namespace of the host (containers, ip netns), with a "
                            "Net namespace column; without it, other namespaces' sockets are "
                            "only counted on stderr")
    where.add_argument("--netns", type=_netns, metavar="NAME|PID|PATH",
                       help="one network namespace: an ip netns NAME, a PID in it, a PATH "
                            "(/run/netns/NAME, /proc/PID/ns/net) or its inode")
    from .serve import add_arguments           # --serve, --format prom, ...
    add_arguments(p)
    g = p.add_argument_group("information")
    g.add_argument("-h", "--help", action="help", help="this help")
    g.add_argument("-V", "--version", action="store_true", help="version and active backend")
    return p


def _value_option(parser: argparse.ArgumentParser, arg: str) -> Optional[str]:
    """The long option `arg` names (in full or a unique prefix, as argparse reads it)
    if that option takes one value; else None."""
    if not arg.startswith("--") or "=" in arg or len(arg) < 3:
        return None
    actions = parser._option_string_actions
    names = [arg] if arg in actions else [o for o in actions if o.startswith(arg)]
    if len(names) != 1 or actions[names[0]].nargs is not None:
        return None
    return names[0]


def expand_clusters(argv: Sequence[str], parser: Optional[argparse.ArgumentParser] = None) -> List[str]:
    """Split netstat-style flag clusters so '-c' may sit anywhere in one, and join
    options to their values.

    ``-ctulpn`` -> ``-c -t -u -l -p -n``; ``-tc2`` -> ``-t -c 2``. An option that
    takes a value is joined to the next argument, whatever it looks like:
    ``--port -1`` -> ``--port=-1`` (a bad port, not an unknown option "-1"; argparse
    takes "-1" for an option, as it has -4 and -6), ``--user -tux`` -> a user name.
    Anything else (unknown letters, the values' checks) is left for argparse.
    """
    parser = parser or build_parser()
    out: List[str] = []
    rest = iter(argv)
    for arg in rest:
        if arg == "--":
            out.append(arg)
            out.extend(rest)
            break
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[1:2].isalpha():
            bad = [ch for ch in arg[1:] if ch.isalpha() and ch not in _FLAG_LETTERS + "chV"]
            if bad:        # argparse would blame the letter before it ("-n: ignored explicit argument")
                raise UsageError("unrecognized option -%s (in %s)" % (bad[0], arg))
        if len(arg) > 2 and _CLUSTER.match(arg):
            for m in _CLUSTER_PART.finditer(arg, 1):
                if m.group(0)[0] == "c":
                    out.append("-c")
                    if m.group(1):
                        out.append(m.group(1))
                else:
                    out.append("-" + m.group(0))
            continue
        if _value_option(parser, arg):
            value = next(rest, None)      # a value, never a cluster (--user -tux is a name)
            out.append(arg if value is None else arg + "=" + value)
            continue
        out.append(arg)
    # -c's value is optional: "-c -1" is a bad interval, not an unknown option
    # "-1" (but "-c -4" is -c and IPv4)
    i = 0
    while i < len(out) - 1 and out[i] != "--":
        if out[i] in ("-c", "--continuous") and _NEGATIVE.match(out[i + 1]) and \
                not _CLUSTER.match(out[i + 1]):
            out[i:i + 2] = ["--continuous=" + out[i + 1]]
        i += 1
    return out


def _export_options(ns: argparse.Namespace) -> "Optional[ExportOptions]":
    from .serve import export_options
    return export_options(ns)


def parse(argv: Sequence[str]) -> Options:
    """Options from argv (without the program name); raises UsageError."""
    parser = build_parser()
    ns = parser.parse_args(expand_clusters(argv, parser))
    kinds = ns.tcp or ns.udp or ns.raw or ns.unix or ns.mptcp or ns.sctp or ns.vsock or ns.xdp
    tables: Set[str] = set()
    if ns.tcp:
        tables.update(TCP)
    if ns.udp:
        tables.update(UDP)
    if ns.raw:
        tables.update(RAW)
    if ns.unix:
        tables.add("unix")
    if ns.mptcp:
        tables.update(MPTCP)
    if ns.sctp:
        tables.update(SCTP)
    if ns.vsock:
        tables.add("vsock")
    if ns.xdp:
        tables.add("xdp")
    if not kinds:
        if ns.proto:
            tables.update(ns.proto)
        elif ns.v4 or ns.v6:              # netstat -4: every inet table of that family, no unix
            tables.update(INET_DEFAULT)
        else:
            tables.update(INET_DEFAULT + ("unix",))
    if ns.proto:
        tables &= set(ns.proto)
    if ns.v4 != ns.v6:                    # -4 -6 together: both families
        tables = {t for t in tables if t not in INET or (t in V6) == ns.v6}
    if ns.all:
        mode = "all"
    elif ns.listening:
        mode = "listening"
    elif ns.port or ns.pid or ns.user or ns.state:
        mode = "all"                      # "--port 22" should show the listener too
    else:
        mode = "connected"
    inet_section = bool(tables & INET) or ns.tcp or ns.udp or ns.raw or ns.mptcp or ns.sctp
    return Options(
        tables=frozenset(tables),
        inet_section=inet_section,
        unix_section="unix" in tables or bool(ns.unix),
        mode=mode,
        numeric_hosts=ns.numeric or ns.numeric_hosts,
        numeric_ports=ns.numeric or ns.numeric_ports,
        numeric_users=ns.numeric or ns.numeric_users,
        program=ns.program,
        extend=ns.extend,
        interval=ns.interval,
        json=ns.json,
        events=ns.events,
        ports=tuple(sorted(set(ns.port))),
        pids=tuple(sorted(set(ns.pid))),
        uids=tuple(sorted(set(ns.user))),
        states=tuple(sorted(set(ns.state))),
        backend=ns.backend,
        proc_root=ns.proc_root,
        version=ns.version,
        export=_export_options(ns),
        other_sections=tuple(t for t in OTHER_SECTIONS if t in tables or getattr(ns, t)),
        netns="all" if ns.all_netns else ns.netns,
    )
