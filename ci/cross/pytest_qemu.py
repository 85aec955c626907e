"""pytest plugin for the suite under qemu-user (loaded by run_py.sh via PYTEST_PLUGINS).

qemu-user translates only a few netlink protocols (ROUTE, KOBJECT_UEVENT,
AUDIT) and refuses every other one, NETLINK_SOCK_DIAG included, with
EPROTONOSUPPORT. Under emulation the netlink source therefore never works:
the code falls back to the /proc/net text, as designed, but live tests that
*require* netlink dumps cannot pass. That is a limit of the emulator, not of
procnet, so those tests are skipped here, with the reason printed (pytest -ra).

Which tests: any marked ``netlink`` (the precise way, if the suite adopts such
a marker); failing that, the ``live`` tests of modules named *netlink*, except
cases parametrized with source="procfs"; and the live tests of what only
sock_diag can list (MPTCP; another namespace entered with setns(), whose
sockets are also named through pidfd_getfd and SIOCGSKNS, ioctls qemu-user
does not translate either), and the own-dump-socket cases that read the
netlink table from its dump.
Nothing of that is skipped where a NETLINK_SOCK_DIAG socket can be opened.

Also skipped under emulation, whatever netlink does: HOST_ONLY modules -- the
hardening runs (leaks, churn), the build system's tests (they need the source
tree, not the wheel staged here), and the layers built on the same records in
pure Python (metrics export, psutil_compat), which the host tier runs in full;
they would only add emulated minutes to prove nothing about the CPU.
"""
import socket

import pytest

NETLINK_SOCK_DIAG = 4


def _sock_diag_error():
    """None if a NETLINK_SOCK_DIAG socket opens here, else the error text."""
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as e:
        return "%s (errno %s)" % (e.strerror or e, e.errno)
    s.close()
    return None


def _source_param(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("source") if callspec is not None else None


HOST_ONLY = {
    "test_leaks", "test_churn", "test_build", "test_prometheus_server", "test_export_prometheus",
    "test_export_otel", "test_export_textfile", "test_psutil_compat", "test_psutil_compat_live",
    "test_json_hostile",      # the CLI's writes against hostile stdouts and signals: the host's I/O
}
# live tests that need sock_diag (MPTCP has no text) or entering a namespace
SOCK_DIAG_MODULES = {"test_netns", "test_families_live"}
SOCK_DIAG_TESTS = {"test_all_reads_the_new_tables", "test_mptcp_listener_in_the_listing",
                   "test_live_named_namespace_note_and_column",
                   # test_diag_tcp46: the tcp+tcp6 dump live (its decoder test runs everywhere)
                   "test_one_dump_is_the_two_dumps", "test_a_port_filter_rides_along",
                   "test_the_request_is_made_exactly_when_it_serves"}


def _callspec_ids(item):
    callspec = getattr(item, "callspec", None)
    return callspec.id if callspec is not None else ""


def pytest_collection_modifyitems(config, items):
    host_only = "run by the host tier; under emulation it proves nothing about the CPU " \
                "(ci/cross/pytest_qemu.py HOST_ONLY)"
    for item in items:
        if item.module.__name__.rpartition(".")[2] in HOST_ONLY:
            item.add_marker(pytest.mark.skip(reason=host_only))
    err = _sock_diag_error()
    if err is None:
        return
    reason = ("NETLINK_SOCK_DIAG cannot be opened here: %s; qemu-user forwards only "
              "NETLINK_ROUTE/KOBJECT_UEVENT/AUDIT (ci/cross/pytest_qemu.py)" % err)
    marked = [i for i in items if i.get_closest_marker("netlink")]
    if not marked:
        marked = [i for i in items
                  if i.get_closest_marker("live") and "netlink" in i.module.__name__
                  and _source_param(i) != "procfs"]   # text-only cases still run
    for item in items:
        mod = item.module.__name__.rpartition(".")[2]
        name = getattr(item, "originalname", None) or item.name
        if (mod in SOCK_DIAG_MODULES or name in SOCK_DIAG_TESTS or (
                name == "test_own_dump_socket_is_never_listed" and _callspec_ids(item).endswith("netlink"))):
            marked.append(item)
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))
