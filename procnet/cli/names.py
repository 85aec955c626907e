"""Names for the table: services, hosts, users, IP protocols; and escaping.

Everything is cached for the life of the process (a ``-c`` loop reuses it).
Host names are looked up in a few daemon threads with an overall deadline per
refresh: what is not back in time is shown numerically, and lands in the
cache for the next refresh. Loopback and wildcard addresses never go to DNS.
"""
import socket
import time
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def escape(s: str) -> str:
    """`s` with nothing that could move the cursor or forge a row.

    Control and other non-printable characters become ``\\n``, ``\\t``,
    ``\\xNN``, ``\\uNNNN``; bytes that were not UTF-8 (surrogate-escaped by
    procnet) become ``\\xNN``; a backslash becomes ``\\\\`` so the escapes are
    unambiguous. Printable text, spaces included, is kept.
    """
    if s.isprintable() and "\\" not in s:
        return s
    out: List[str] = []
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= o <= 0xDCFF:           # a byte that was not UTF-8
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x100:
            out.append("\\x%02x" % o)
        elif o < 0x10000:
            out.append("\\u%04x" % o)
        else:
            out.append("\\U%08x" % o)
    return "".join(out)


def _read_lines(path: str) -> Optional[List[str]]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None


class Services:
    """Port -> service name for a protocol ("tcp" or "udp"), as getservbyport answers.

    The services database is read once from /etc/services (the "files" source
    every system uses): socket.getservbyport scans that file anew for every
    miss, ~20 µs each, which is most of the time of a 10 000-row listing.
    Without a readable /etc/services, socket.getservbyport is asked, cached.
    """

    def __init__(self, path: str = "/etc/services") -> None:
        self._path = path
        self._db: Optional[Dict[Tuple[int, str], str]] = None
        self._loaded = False
        self._cache: Dict[Tuple[int, str], str] = {}

    def _load(self) -> None:
        self._loaded = True
        lines = _read_lines(self._path)
        if lines is None:
            return
        db: Dict[Tuple[int, str], str] = {}
        for line in lines:
            words = line.split("#", 1)[0].split()
            if len(words) < 2 or "/" not in words[1]:
                continue
            port, _, proto = words[1].partition("/")
            if port.isdigit():
                db.setdefault((int(port), proto), words[0])    # the first entry wins
        self._db = db

    def name(self, port: int, proto: str) -> str:
        """The service name, or the number as text."""
        key = (port, proto)
        s = self._cache.get(key)
        if s is None:
            if not self._loaded:
                self._load()
            if self._db is not None:
                s = self._db.get(key)
            else:
                try:
                    s = socket.getservbyport(port, proto)
                except (OSError, OverflowError):
                    s = None
            s = self._cache[key] = escape(s) if s else str(port)
        return s


class Protocols:
    """IP protocol number -> name from /etc/protocols (netstat names raw sockets' 'port' so)."""

    def __init__(self, path: str = "/etc/protocols") -> None:
        self._path = path
        self._db: Optional[Dict[int, str]] = None

    def name(self, number: int) -> str:
        if self._db is None:
            db: Dict[int, str] = {}
            for line in _read_lines(self._path) or ():
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit():
                    db.setdefault(int(words[1]), escape(words[0]))
            self._db = db
        return self._db.get(number) or str(number)


class Users:
    """uid -> user name (pwd), cached; the number when unknown."""

    def __init__(self) -> None:
        self._cache: Dict[int, str] = {}

    def name(self, uid: int) -> str:
        s = self._cache.get(uid)
        if s is None:
            import pwd
            try:
                s = escape(pwd.getpwuid(uid).pw_name)
            except (KeyError, OverflowError):
                s = str(uid)
            self._cache[uid] = s
        return s


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


class Hosts:
    """IP text -> host name, bounded in time.

    ``prepare(ips)`` resolves what it can within `deadline` seconds; ``name(ip)``
    then answers from the cache (the address itself if unresolved). Wildcards
    stay numeric (netstat: ``0.0.0.0``), loopback addresses are named from
    /etc/hosts only, IPv4-mapped IPv6 addresses as their IPv4 address.
    """

    def __init__(self, deadline: float = 0.5, workers: int = 8, hosts_path: str = "/etc/hosts",
                 resolve: Optional[Callable[[str], Tuple[str, List[str], List[str]]]] = None) -> None:
        self.deadline = deadline
        self.workers = workers
        self._hosts_path = hosts_path
        self._resolve = resolve or socket.gethostbyaddr
        self._names: Dict[str, str] = {}        # final answers (escaped)
        self._file: Optional[Dict[str, str]] = None
        self._queue: List[str] = []
        self._inflight: Set[str] = set()
        self._threads = 0
        import threading                        # only when names are wanted (no -n)
        self._thread = threading.Thread
        self._cond = threading.Condition()

    def _hosts_file(self) -> Dict[str, str]:
        if self._file is None:
            table: Dict[str, str] = {}
            for line in _read_lines(self._hosts_path) or ():
                words = line.split("#", 1)[0].split()
                if len(words) >= 2:
                    table.setdefault(words[0], words[1])     # the first name, as gethostbyaddr
            self._file = table
        return self._file

    def _local(self, ip: str) -> Optional[str]:
        """An answer that needs no lookup, or None."""
        if ip in ("0.0.0.0", "::"):
            return ip
        lookup = ip[7:] if ip.startswith("::ffff:") and "." in ip else ip
        name = self._hosts_file().get(lookup)
        if name is not None:
            return escape(name)
        if _is_loopback(lookup) or lookup == "0.0.0.0":
            return ip
        return None

    def _worker(self) -> None:
        cond = self._cond
        while True:
            with cond:
                if not self._queue:
                    self._threads -= 1
                    return
                ip = self._queue.pop()
            lookup = ip[7:] if ip.startswith("::ffff:") and "." in ip else ip
            try:
                name = escape(self._resolve(lookup)[0]) or ip
            except (OSError, UnicodeError, ValueError):
                name = ip
            with cond:
                self._names[ip] = name
                self._inflight.discard(ip)
                cond.notify_all()

    def prepare(self, ips: Iterable[str]) -> None:
        """Resolve `ips` (those not known yet) for at most `deadline` seconds."""
        names = self._names
        if len(names) > 100000:            # bounded for a long -c run
            names.clear()
        todo = []
        for ip in set(ips):
            if ip in names or ip in self._inflight:
                continue
            local = self._local(ip)
            if local is not None:
                names[ip] = local
            else:
                todo.append(ip)
        if not todo:
            return
        end = time.monotonic() + self.deadline
        cond = self._cond
        with cond:
            self._queue.extend(todo)
            self._inflight.update(todo)
            while self._threads < min(self.workers, len(self._queue) + self._threads):
                self._threads += 1
                self._thread(target=self._worker, name="procnet-resolver", daemon=True).start()
            # wait for this call's addresses only: lookups still in flight from an
            # earlier refresh must not cost every refresh the whole deadline
            while any(ip in self._inflight for ip in todo):
                left = end - time.monotonic()
                if left <= 0:
                    break
                cond.wait(left)

    def name(self, ip: str) -> Optional[str]:
        """The name; "" when there is none (show the address); None while unknown."""
        n = self._names.get(ip)
        if n is None:
            return None
        return "" if n == ip else n
