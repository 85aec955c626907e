"""The pure-Python backend: the same steps as csrc/, file for file.

Each csrc/NAME.c has its twin procnet/_pure/NAME.py (tests/test_layout.py
checks the names): tables_*.py decode the /proc/net formats, table_reader.py
reads a table and keeps what the query's filters keep, sock_diag.py is the
netlink source, owners_proc.py the /proc/PID/fd walk, snapshot.py the join,
cache.py / proc_ident.py / poll_diff.py a Poller's state, file_read.py every
file read under the root. Native-only, with no twin: the BPF owner source
(owners_bpf.c, bpf_load.c), owners_hash.c (a dict here) and dirents.c
(os.listdir here). Exact parity with the C core is enforced by tests/ on the
same inputs.

The backend's entry points (Cache, poll, snapshot, bpf_load, bpf_loaded,
bpf_may_load, can_enter_netns) are snapshot.py's; _backend loads that module.
Nothing is imported here: a module that needs one helper of the twin
(file_read for a bounded read) must not pay ~25 ms for all of it, which every
native command-line run would.
"""
