"""The Poller's owner cache and diff on fixture trees: no live process needed.

A fixture process "runs" when its schedstat counters change; pid reuse is a
new start time in PID/stat. The cache must replay a process exactly when its
identity (start time, threads, counters) is unchanged, walk it otherwise, and
every poll must equal a fresh connections() on the same tree.
"""
import os
import shutil

import pytest

import procnet
from procfs_tree import inet_line, make_tree, sock, unix_line

LO = "0100007F"


def tcp(sl, port, inode, st=0x0A, tx=0):
    return inet_line(sl, "%s:%04X" % (LO, port), "00000000:0000", st, inode, tx=tx)


def stat_line(pid, comm, state, threads, start):
    fields = ["0"] * 50
    fields[20 - 4] = str(threads)           # field 20: num_threads
    fields[22 - 4] = str(start)             # field 22: starttime
    return "%d (%s) %s %s\n" % (pid, comm, state, " ".join(fields))


def write_ident(root, pid, *, start=1000, counters=((None, 5000, 7),), state="S", comm="p",
                states=None):
    """PID/stat with this start time and thread count, and schedstat and stat
    per thread. counters: (tid or None for the leader, runtime ns, pcount) per
    thread; states: tid -> state of a thread (default "S")."""
    pdir = os.path.join(root, str(pid))
    live = len(counters)            # (the kernel counts a zombie leader too)
    with open(os.path.join(pdir, "stat"), "w") as f:
        f.write(stat_line(pid, comm, state, live, start))
    shutil.rmtree(os.path.join(pdir, "task"), ignore_errors=True)
    for tid, run, count in counters:
        tid = pid if tid is None else tid
        tdir = os.path.join(pdir, "task", str(tid))
        os.makedirs(tdir)
        with open(os.path.join(tdir, "schedstat"), "w") as f:
            f.write("%d 0 %d\n" % (run, count))
        tstate = state if tid == pid else (states or {}).get(tid, "S")
        with open(os.path.join(tdir, "stat"), "w") as f:
            f.write(stat_line(tid, comm, tstate, live, start))
        if tid == pid:
            with open(os.path.join(pdir, "schedstat"), "w") as f:
                f.write("%d 0 %d\n" % (run, count))


def relink(root, pid, fd, target):
    path = os.path.join(root, str(pid), "fd", str(fd))
    if os.path.lexists(path):
        os.unlink(path)
    if target is not None:
        os.symlink(target, path)


def write_tcp(root, lines):
    from procfs_tree import HEADERS
    with open(os.path.join(root, "net", "tcp"), "w") as f:
        f.write(HEADERS["tcp"] + "\n" + "".join(l + "\n" for l in lines))


@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / "proc")
    make_tree(root, {"tcp": [tcp(0, 80, 111), tcp(1, 81, 222), tcp(2, 82, 333)],
                     "unix": [unix_line(444, "/run/a b")]},
              {100: {"comm": "web", "fd": {3: sock(111), 4: "/dev/null", 5: sock(444)}},
               200: {"comm": "db", "fd": {3: sock(222), 7: sock(111)}}})
    write_ident(root, 100)
    write_ident(root, 200)
    return root


def pair(tree, impl, kind=("tcp", "unix")):
    p = procnet.Poller(kind, proc_root=tree, backend=impl.name)
    return p, (lambda: impl.connections(kind, proc_root=tree))


def owners_of(snap, inode):
    return [(o.pid, o.fd, o.name) for c in snap if c.inode == inode for o in c.owners]


def test_first_poll_walks_then_replays(tree, impl):
    p, fresh = pair(tree, impl)
    r = p.poll()
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)
    assert {c.event for c in r.changes} == {"open"} and len(r.changes) == 4
    assert r.procs_cached == 0 and r.fds_read == 5
    r2 = p.poll()
    assert r2.changes == () and r2.procs_cached == 2 and r2.fds_read == 0
    assert list(r2.snapshot) == list(r.snapshot)
    # unchanged sockets keep their objects
    assert all(a is b for a, b in zip(r.snapshot, r2.snapshot))
    assert r2.snapshot.processes == fresh().processes == 2


def test_a_process_that_ran_is_walked_again(tree, impl):
    p, fresh = pair(tree, impl)
    p.poll()
    # fd 3 of pid 100 now holds socket 333; socket 111 lives on in pid 200
    relink(tree, 100, 3, sock(333))
    # ... but its counters did not move: by the model it cannot have happened
    r = p.poll()
    assert r.procs_cached == 2 and owners_of(r.snapshot, 333) == []
    write_ident(tree, 100, counters=((None, 5001, 8),))       # it ran
    r = p.poll()
    assert r.procs_cached == 1 and r.fds_read == 3
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)
    assert owners_of(r.snapshot, 333) == [(100, 3, "web")]
    assert owners_of(r.snapshot, 111) == [(200, 7, "db")]
    ev = sorted((c.event, c.conn.inode, [o[:2] for o in c.conn.owners],
                 [o[:2] for o in (c.old.owners if c.old else ())]) for c in r.changes)
    assert ev == [("owners", 111, [(200, 7)], [(100, 3), (200, 7)]),
                  ("owners", 333, [(100, 3)], [])]
    assert p.poll().changes == ()


@pytest.mark.parametrize("change", ["start", "threads", "pcount_only", "runtime_only"])
def test_identity_changes_force_a_walk(tree, impl, change):
    if change == "threads":
        write_ident(tree, 200, counters=((None, 5000, 7), (201, 10, 1)))
    p, fresh = pair(tree, impl)
    p.poll()
    relink(tree, 200, 9, sock(333))
    if change == "start":          # the pid was reused by another process: a new directory
        os.rename(os.path.join(tree, "200"), os.path.join(tree, "old200"))
        shutil.copytree(os.path.join(tree, "old200"), os.path.join(tree, "200"), symlinks=True)
        shutil.rmtree(os.path.join(tree, "old200"))
        write_ident(tree, 200, start=2000)
    elif change == "threads":      # a thread appeared, the others did not run
        write_ident(tree, 200, counters=((None, 5000, 7), (201, 10, 1), (202, 3, 1)))
    elif change == "pcount_only":
        write_ident(tree, 200, counters=((None, 5000, 8),))
    else:
        write_ident(tree, 200, counters=((None, 5100, 7),))
    r = p.poll()
    assert r.procs_cached == 1
    assert owners_of(r.snapshot, 333) == [(200, 9, "db")]
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)


def test_off_procfs_the_stat_is_always_read(tree, impl):
    """The short identity check (proc_ident.c) holds on procfs only, whose
    directories are new inodes for new processes; a fixture tree's
    filesystem may hand a freed inode straight back. Here every identity
    reads the stat: a start time changed in place is seen."""
    p, fresh = pair(tree, impl)
    for _ in range(3):
        assert p.poll().procs_cached in (0, 2)
    write_ident(tree, 200, start=7)                # same counters, same directory
    relink(tree, 200, 9, sock(333))
    r = p.poll()
    assert r.procs_cached == 1 and owners_of(r.snapshot, 333) == [(200, 9, "db")]
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)


def test_a_reused_pid_is_a_new_directory_even_with_the_same_numbers(tree, impl):
    """A pid reused by a process with the very same counters and start time:
    its directory is another inode, so it is walked."""
    p, fresh = pair(tree, impl)
    p.poll()
    os.rename(os.path.join(tree, "200"), os.path.join(tree, "old200"))
    shutil.copytree(os.path.join(tree, "old200"), os.path.join(tree, "200"), symlinks=True)
    shutil.rmtree(os.path.join(tree, "old200"))
    relink(tree, 200, 9, sock(333))
    r = p.poll()
    assert r.procs_cached == 1 and owners_of(r.snapshot, 333) == [(200, 9, "db")]
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)
    assert p.poll().procs_cached == 2            # and is known by its new directory after


@pytest.mark.parametrize("what", ["no_stat", "zero_schedstat", "zombie_leader", "bad_stat"])
def test_unknown_identity_is_always_walked(tree, impl, what):
    if what == "no_stat":
        os.unlink(os.path.join(tree, "100", "stat"))
    elif what == "zero_schedstat":   # a kernel without schedstats prints 0 0 0
        write_ident(tree, 100, counters=((None, 0, 0),))
    elif what == "zombie_leader":    # a zombie leader without counters ("0 0 0"), one thread
        write_ident(tree, 100, state="Z", counters=((None, 0, 0), (101, 5, 5)))
    else:
        with open(os.path.join(tree, "100", "stat"), "w") as f:
            f.write("100 (web) S 1 2 3\n")
    p, fresh = pair(tree, impl)
    p.poll()
    relink(tree, 100, 6, sock(333))
    r = p.poll()
    assert r.procs_cached == 1            # pid 200 only
    assert owners_of(r.snapshot, 333) == [(100, 6, "web")]


def test_comm_with_parens_and_spaces(tree, impl):
    write_ident(tree, 100, comm="a) (b c")   # the name may hold ')' and blanks
    p, _ = pair(tree, impl)
    p.poll()
    assert p.poll().procs_cached == 2


def test_open_close_and_exit_events(tree, impl):
    p, fresh = pair(tree, impl)
    p.poll()
    write_tcp(tree, [tcp(0, 80, 111), tcp(2, 82, 333), tcp(3, 90, 555)])   # 222 closed, 555 new
    relink(tree, 200, 3, None)
    relink(tree, 200, 8, sock(555))
    write_ident(tree, 200, counters=((None, 9000, 9),))
    r = p.poll()
    got = sorted((c.event, c.conn.inode, [o[:2] for o in c.conn.owners]) for c in r.changes)
    assert got == [("close", 222, [(200, 3)]), ("open", 555, [(200, 8)])]
    # the process exits: its sockets lose it as an owner
    shutil.rmtree(os.path.join(tree, "200"))
    r = p.poll()
    got = sorted((c.event, c.conn.inode, [o[:2] for o in c.conn.owners]) for c in r.changes)
    assert got == [("owners", 111, [(100, 3)]), ("owners", 555, [])]
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)
    assert p.poll().changes == ()


def test_state_and_queue_changes_are_not_events_but_show(tree, impl):
    p, fresh = pair(tree, impl)
    first = p.poll().snapshot
    write_tcp(tree, [tcp(0, 80, 111, tx=5), tcp(1, 81, 222, st=1), tcp(2, 82, 333)])
    r = p.poll()
    assert r.changes == ()
    by = {c.inode: c for c in r.snapshot}
    assert by[111].tx_queue == 5 and by[222].state == "ESTABLISHED"
    assert by[333] is [c for c in first if c.inode == 333][0]
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)


def test_rename_is_a_modification(tree, impl):
    p, fresh = pair(tree, impl)
    p.poll()
    with open(os.path.join(tree, "100", "comm"), "w") as f:
        f.write("web2\n")
    write_ident(tree, 100, counters=((None, 6000, 9),))
    r = p.poll()
    assert r.changes == ()
    assert owners_of(r.snapshot, 111)[0] == (100, 3, "web2")
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)


def test_time_wait_rows_match_by_address(tree, impl):
    write_tcp(tree, [tcp(0, 80, 111), tcp(1, 81, 0, st=6), tcp(2, 82, 0, st=6)])
    p, _ = pair(tree, impl)
    r1 = p.poll().snapshot
    write_tcp(tree, [tcp(0, 82, 0, st=6), tcp(1, 80, 111)])
    r = p.poll()
    assert sorted((c.event, c.conn.laddr.port) for c in r.changes) == [("close", 81)]
    tw = [c for c in r.snapshot if c.inode == 0]
    assert tw[0] is [c for c in r1 if c.proto == "tcp" and c.laddr.port == 82][0]


def test_backends_agree_poll_by_poll(tree, both):
    native, pure = both
    pn = procnet.Poller(("tcp", "unix"), proc_root=tree, backend="native")
    pp = procnet.Poller(("tcp", "unix"), proc_root=tree, backend="pure")

    def same():
        a, b = pn.poll(), pp.poll()
        assert list(a.snapshot) == list(b.snapshot)
        assert [(c.event, c.conn, c.old) for c in a.changes] == [(c.event, c.conn, c.old) for c in b.changes]
        assert (a.procs_cached, a.fds_read) == (b.procs_cached, b.fds_read)
        # change tracking's holders: every pid the walk saw holding any socket
        assert pn._holders == pp._holders and pn._holders
    same()
    same()
    relink(tree, 100, 9, sock(222))
    write_ident(tree, 100, counters=((None, 1, 1),))
    write_tcp(tree, [tcp(0, 80, 111, tx=3), tcp(1, 81, 222), tcp(4, 99, 777)])
    same()
    write_ident(tree, 200, start=5)
    same()


def test_rebase_keeps_results_exact_and_memory_bounded(tree, impl):
    # every poll changes one socket: after more than (sockets + slack) records
    # were handed over, the poll is rebased -- and still equals a fresh one
    from procnet import _backend
    p, fresh = pair(tree, impl, kind="tcp")
    p.poll()
    mod = _backend.resolve(impl.name)[1]
    cache = p._cache
    q = p._q
    rebased = 0
    for i in range(1, 1100):
        write_tcp(tree, [tcp(0, 80, 111, tx=i), tcp(1, 81, 222), tcp(2, 82, 333)])
        _, _, _, delta = mod.poll(q, p._planner.plan(q), cache)
        rebased += delta["rebased"]
    assert rebased == 1
    p._all = []          # (the raw calls above bypassed the Poller's list)
    p._cache.close()
    p._cache = mod.Cache()
    p.poll()
    r = p.poll()
    assert sorted(r.snapshot, key=lambda c: c.inode) == sorted(fresh(), key=lambda c: c.inode)


def test_lookup_and_lifecycle(tree, impl):
    p, _ = pair(tree, impl)
    p.poll()
    got = p.lookup(lport=81)
    assert [(c.inode, [o[:2] for o in c.owners]) for c in got] == [(222, [(200, 3)])]
    assert p.lookup(pid=100, kind="tcp")[0].inode == 111
    with pytest.raises(TypeError):
        p.lookup(bogus=1)
    p.close()
    with pytest.raises(procnet.ProcNetError):
        p.poll()


def test_watch_yields_changes_until_stopped(tree, impl):
    p, _ = pair(tree, impl)
    seen = []
    for change in p.watch(interval=0):
        seen.append(change.event)
        if len(seen) == 4:
            p.stop()
    assert seen == ["open"] * 4
    # stopped from another thread while it waits; nothing changed meanwhile
    import threading
    threading.Timer(0.3, p.stop).start()
    assert list(p.watch(interval=0.05, initial=False)) == []


def test_multithreaded_process_is_replayed_while_its_threads_sleep(tree, impl):
    write_ident(tree, 200, counters=((None, 5000, 7), (201, 10, 1), (202, 3, 1)))
    p, fresh = pair(tree, impl)
    p.poll()
    assert p.poll().procs_cached == 2
    write_ident(tree, 200, counters=((None, 5000, 7), (201, 10, 1), (202, 4, 1)))   # one ran
    relink(tree, 200, 9, sock(333))
    r = p.poll()
    assert r.procs_cached == 1 and owners_of(r.snapshot, 333) == [(200, 9, "db")]


@pytest.mark.parametrize("who", ["leader", "thread"])
def test_a_running_thread_is_never_trusted(tree, impl, who):
    # a thread on a CPU may run on with neither counter moving: always walked
    if who == "leader":
        write_ident(tree, 100, state="R")
    else:
        write_ident(tree, 100, counters=((None, 5000, 7), (101, 1, 1)), states={101: "R"})
    p, fresh = pair(tree, impl)
    p.poll()
    relink(tree, 100, 6, sock(333))
    r = p.poll()
    assert r.procs_cached == 1 and owners_of(r.snapshot, 333) == [(100, 6, "web")]


def test_a_thread_made_while_the_tasks_were_read_is_not_trusted(tree, impl):
    write_ident(tree, 200, counters=((None, 5000, 7), (201, 10, 1)))
    with open(os.path.join(tree, "200", "stat"), "w") as f:     # says 3 threads, 2 listed
        f.write(stat_line(200, "db", "S", 3, 1000))
    p, _ = pair(tree, impl)
    p.poll()
    assert p.poll().procs_cached == 1


def test_events_follow_python_side_filters(tmp_path, impl):
    # unix LISTEN and NONE share a kernel state code (LISTEN is a flag): the one
    # state filter, in the core, tells them apart, and a socket that starts
    # listening must be reported as opened, one that stops as closed
    root = str(tmp_path / "proc")
    make_tree(root, {"unix": [unix_line(444, "/run/s")]}, {100: {"comm": "srv", "fd": {3: sock(444)}}})
    write_ident(root, 100)
    p = procnet.Poller("unix", state="LISTEN", proc_root=root, backend=impl.name)
    assert p.poll().changes == ()
    with open(os.path.join(root, "net", "unix"), "w") as f:
        from procfs_tree import HEADERS
        f.write(HEADERS["unix"] + "\n" + unix_line(444, "/run/s", listening=True) + "\n")
    r = p.poll()
    assert [(c.event, c.conn.inode, c.conn.state) for c in r.changes] == [("open", 444, "LISTEN")]
    with open(os.path.join(root, "net", "unix"), "w") as f:
        f.write(HEADERS["unix"] + "\n" + unix_line(444, "/run/s") + "\n")
    r = p.poll()
    assert [(c.event, c.conn.inode) for c in r.changes] == [("close", 444)]
    # a filter of the caller's own narrows the Poller's, never widens it
    assert [c.event for c in r.select(lambda c: True)] == ["close"]
    assert [c.event for c in r.select(lambda c: False)] == []


def test_watch_stopped_before_it_starts_and_lookup_keeps_the_root(tree, impl):
    p, _ = pair(tree, impl)
    it = p.watch(interval=0)
    p.stop()
    assert list(it) == []
    with pytest.raises(TypeError):
        p.lookup(proc_root="/proc")
    p.poll()
    it = p.watch(interval=0.01, initial=False)    # not the poller's first poll: nothing to hide
    import threading
    threading.Timer(0.2, p.close).start()
    assert list(it) == []                        # closed meanwhile: the iteration just ends


def test_zombie_leader_with_sleeping_threads_is_replayed(tree, impl):
    # pthread_exit() in main: the leader is a zombie, its counters frozen; the
    # process is what its other threads do
    write_ident(tree, 100, state="Z", counters=((None, 70, 3), (101, 5, 5)))
    p, _ = pair(tree, impl)
    p.poll()
    assert p.poll().procs_cached == 2


def test_an_exception_while_resetting_leaves_a_usable_cache(tree, impl, monkeypatch):
    """A poll that fails starts afresh; an exception landing in that reset (a
    signal handler's, Ctrl-C) must leave the poller a cache it can use, never
    one already freed (a crash in the core, found by a hostile probe)."""
    p, fresh = pair(tree, impl)
    p.poll()
    real_cache = p._impl.Cache

    def cache_raises():
        monkeypatch.setattr(p._impl, "Cache", real_cache)
        raise KeyboardInterrupt("in the reset")

    def poll_raises(*a, **k):
        raise KeyboardInterrupt("in the poll")
    real_poll = p._impl.poll
    monkeypatch.setattr(p._impl, "Cache", cache_raises)
    monkeypatch.setattr(p._impl, "poll", poll_raises)
    with pytest.raises(KeyboardInterrupt):
        p.poll()
    monkeypatch.setattr(p._impl, "poll", real_poll)
    for _ in range(3):
        assert sorted(c.inode for c in p.poll().snapshot) == sorted(c.inode for c in fresh())
    p.close()
