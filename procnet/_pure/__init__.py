"""The pure-Python backend: the same steps as csrc/, file for file.

scan.py ~ scan.c, tables_*.py ~ tables_*.c, table_reader.py ~ table_reader.c,
owners_proc.py ~ owners_proc.c + owners_hash.c, snapshot.py ~ snapshot.c,
cache.py ~ cache.c. (The BPF owner source, owners_bpf.c, is native-only.)
Exact parity with the C core is enforced by tests/ on the same inputs.
"""
from .snapshot import Cache, bpf_load, bpf_loaded, bpf_may_load, poll, snapshot

__all__ = ["Cache", "poll", "snapshot", "bpf_load", "bpf_loaded", "bpf_may_load"]
