#!/usr/bin/env python3
"""Turn one pytest-benchmark JSON run into BENCHMARKS.md tables and a scaling plot.

    python benchmarks/report.py bench.json [--plot benchmarks/scaling.png] [--out BENCHMARKS.md]

Ratios are computed between contenders of the same run (same workload, same
machine state); absolute medians are given after them.
"""
import argparse
import json
import os
import platform
import re
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

SCALE_ORDER = ["tiny", "1k", "10k", "50k"]


def load(path: str) -> Tuple[dict, Dict[str, Dict[str, dict]]]:
    with open(path) as f:
        data = json.load(f)
    groups: Dict[str, Dict[str, dict]] = defaultdict(dict)
    for b in data["benchmarks"]:
        name = re.sub(r"\[.*\]$", "", b["name"]).replace("test_", "")
        param = re.search(r"\[(.*)\]$", b["name"])
        if param and not any(param.group(1) == s for s in SCALE_ORDER):
            # parametrized contenders (tool, module, who): keep the non-scale part
            extra = [p for p in param.group(1).split("-") if p not in SCALE_ORDER]
            if extra:
                name += "[" + "-".join(extra) + "]"
        groups[b["group"]][name] = b
    return data, groups


def median_ms(b: dict) -> float:
    return b["stats"]["median"] * 1e3


def machine(data: dict) -> str:
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {}).get("brand_raw") or platform.processor() or "?"
    return "%s, %s cores, Linux %s, Python %s" % (cpu, os.cpu_count(), platform.release(),
                                                  m.get("python_version", platform.python_version()))


def table(groups: Dict[str, Dict[str, dict]], group: str, refs: List[str]) -> List[str]:
    g = groups[group]
    present = [r for r in refs if r in g]
    head = "| contender | " + " | ".join("× %s" % r for r in present) + " | median | sockets |"
    lines = [head, "|" + "---|" * (len(present) + 3)]
    for name, b in sorted(g.items(), key=lambda kv: median_ms(kv[1])):
        if "peak_kib" in b.get("extra_info", {}):
            continue
        ratios = " | ".join("%.2f" % (median_ms(b) / median_ms(g[r])) for r in present)
        lines.append("| %s | %s | %.1f ms | %s |" % (name, ratios, median_ms(b),
                                                       b.get("extra_info", {}).get("sockets", "")))
    return lines


def memory(groups: Dict[str, Dict[str, dict]], group: str) -> List[str]:
    lines = ["| contender | peak RSS growth | records |", "|---|---|---|"]
    for name, b in sorted(groups[group].items()):
        e = b.get("extra_info", {})
        lines.append("| %s | %.1f MiB | %s |" % (name, e.get("peak_kib", 0) / 1024, e.get("records", "")))
    return lines


def per_socket(groups: Dict[str, Dict[str, dict]]) -> Dict[str, List[Tuple[int, float]]]:
    """contender -> [(sockets, µs per socket)] over the 'owners' groups."""
    out: Dict[str, List[Tuple[int, float]]] = defaultdict(list)
    for group, g in groups.items():
        if not group.startswith("owners "):
            continue
        for name, b in g.items():
            n = b.get("extra_info", {}).get("sockets")
            if n:
                out[name].append((n, median_ms(b) * 1e3 / n))
    for v in out.values():
        v.sort()
    return out


def plot(series: Dict[str, List[Tuple[int, float]]], path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, pts in sorted(series.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("sockets in the workload")
    ax.set_ylabel("µs per socket (median snapshot / sockets)")
    ax.set_title("Full snapshot with owners: cost per socket")
    ax.grid(True, which="both", alpha=.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


# (what, group prefix, contender a, contender b, bound): target met when a/b <= bound
# (a "x faster" target is written as slower/faster >= n, i.e. b/a <= 1/n).
TARGETS = [
    ("native snapshot with owners <= 1.10x the C floor (issue 3)", "owners", "owners_native", "owners_floor", 1.10),
    ("same, text source, one thread (like for like with the floor)", "owners",
     "owners_native_procfs_single_thread", "owners_floor", 1.10),
    ("native >= 2.5x faster than psutil (issue 3)", "owners", "owners_native", "owners_psutil", 1 / 2.5),
    ("pure no slower than psutil (issue 3)", "owners", "owners_pure", "owners_psutil", 1.0),
    ("netlink listing, C part <= 0.3x text (issue 7)", "no owners", "no_owners_core[auto]",
     "no_owners_core[procfs]", 0.3),
    ("netlink listing through the API <= 0.5x text (issue 7)", "no owners", "no_owners_native[auto]",
     "no_owners_native[procfs]", 0.5),
    ("netlink snapshot with owners <= 0.85x the floor (issue 7)", "owners", "owners_native", "owners_floor", 0.85),
    ("netlink snapshot >= 3x faster than psutil (issue 7)", "owners", "owners_native", "owners_psutil", 1 / 3),
    ("procnet -tuaxnp faster than ss -tuaxnp (issue 3; 10k and up)", "cli -tuaxnp", "cli_procnet",
     "cli_peer[ss--tuaxnp]", 1.0),
    ("procnet -tulnp >= 2x faster than ss -tulnp (issue 7; at 50k)", "cli -tulnp", "listen_procnet",
     "listen_ss", 0.5),
    ("import procnet no slower than import psutil (issue 3)", "import", "import[procnet]", "import[psutil]", 1.0),
    ("2 threads x 3 snapshots < 2x the time of 1 thread: GIL released (issue 9)",
     "threads (3 snapshots per thread)", "gil_two_threads", "gil_one_thread", 1.6),
    ("steady poll <= 1/5 of a full snapshot (issue 8; aim 1/10)", "poll", "poll_steady", "poll_full", 0.2),
    ("poll after 1% of sockets replaced <= 1/5 of a full snapshot (issue 8)", "poll",
     "poll_churn_1pct", "poll_full", 0.2),
    ("warm lookup of one port <= 1/20 of a full snapshot (issue 8)", "poll", "lookup_warm", "poll_full",
     0.05),
    ("BPF owner scan >= 8x faster than the /proc walk (issue 10)", "owner scan", "owner_scan[bpf]",
     "owner_scan[procfs]", 1 / 8),
    ("netlink listing + BPF owners <= 0.3x the C floor (issue 10)", "owners", "owners_native_bpf",
     "owners_floor", 0.3),
    ("procnet -tuaxnp >= 4x faster than ss -tuaxnp (issue 10; at 50k)", "cli -tuaxnp", "cli_procnet",
     "cli_peer[ss--tuaxnp]", 0.25),
    ("warm Prometheus scrape >= 10x cheaper than psutil.net_connections() (issue 17)", "export scrape",
     "scrape_warm", "psutil", 0.1),
    ("warm scrape without listener series >= 10x cheaper than psutil (issue 17)", "export scrape",
     "scrape_warm_counts", "psutil", 0.1),
    ("psutil_compat net_connections('all') >= 5x faster than psutil (issue 16)", "psutil compat all",
     "compat_all", "psutil_all", 1 / 5),
    ("psutil_compat Process(pid).net_connections >= 20x faster than psutil's (issue 16; at 50k)",
     "psutil compat process", "compat_process", "psutil_process", 1 / 20),
    ("netns='all' over 100 namespaces <= 1.5x one namespace, same sockets (issue 15)", "netns",
     "spread_all", "one_ns", 1.5),
    ("netns='all' >= 20x faster than ip netns exec ss -tuanp per namespace (issue 15)", "netns",
     "spread_all", "ss_loop", 1 / 20),
    ("procnet -tuaxnp >= 5x faster than ss -tuaxnp (issue 18; at 50k)", "cli -tuaxnp", "cli_procnet",
     "cli_peer[ss--tuaxnp]", 0.2),
    ("procnet -tulnp >= 5x faster than ss -tulnp (issue 18)", "cli -tulnp", "listen_procnet",
     "listen_ss", 0.2),
    ("procnet --json rendered by the core >= 2x faster than by Python (issue 18)", "cli --json -tuaxp",
     "json_procnet", "json_procnet_python", 0.5),
    ("tracked steady poll <= 1/20 of a full snapshot, same owner source (issue 18)", "poll",
     "poll_steady_tracked", "poll_full", 0.05),
    ("tracked poll after 1% of sockets replaced <= 1/10 of a full snapshot (issue 18)", "poll",
     "poll_churn_1pct_tracked", "poll_full", 0.1),
    ("the same, TCP listeners replaced (the largest table listed again; issue 18)", "poll",
     "poll_churn_1pct_tcp_tracked", "poll_full", 0.1),
    ("tracked warm lookup <= 1/50 of a full snapshot (issue 18)", "poll", "lookup_warm_tracked",
     "poll_full", 0.02),
    ("untracked steady poll <= 1/5 of a full snapshot (issue 18, without BPF)", "poll",
     "poll_steady", "poll_full", 0.2),
]


def break_even(groups: Dict[str, Dict[str, dict]]) -> List[str]:
    """One-shot break-even of the BPF owner source: the load (once per process)
    against what each socket saves (walk minus BPF scan, per socket)."""
    lines = []
    for scale in SCALE_ORDER:
        scan, load = groups.get("owner scan " + scale, {}), groups.get("bpf load " + scale, {})
        if "owner_scan[bpf]" not in scan or "owner_scan[procfs]" not in scan or "bpf_load" not in load:
            continue
        n = scan["owner_scan[bpf]"].get("extra_info", {}).get("sockets") or 0
        saved = (median_ms(scan["owner_scan[procfs]"]) - median_ms(scan["owner_scan[bpf]"])) / max(n, 1)
        lo = median_ms(load["bpf_load"])
        lines.append("| %s | %.1f ms | %.2f µs | %s |" % (
            scale, lo, saved * 1000, "%d sockets" % (lo / saved) if saved > 0 else "never"))
    if lines:
        lines = ["| scale | load (once) | saved per socket | break-even |", "|---|---|---|---|"] + lines
    return lines


def targets(groups: Dict[str, Dict[str, dict]]) -> List[str]:
    lines = ["| target | scale | measured ratio | bound | met |", "|---|---|---|---|---|"]
    for what, prefix, a, b, bound in TARGETS:
        for group in sorted(groups, key=lambda g: SCALE_ORDER.index(g.rsplit(" ", 1)[-1])
                            if g.rsplit(" ", 1)[-1] in SCALE_ORDER else 99):
            head, _, scale = group.rpartition(" ")
            if head != prefix or scale not in SCALE_ORDER:
                if not group.startswith(prefix + " ("):      # a group without scales
                    continue
                scale = "-"
            g = groups[group]
            if a in g and b in g:
                r = median_ms(g[a]) / median_ms(g[b])
                lines.append("| %s | %s | %.2f | %.2f | %s |" % (what, scale or "-", r, bound,
                                                                 "yes" if r <= bound else "**no**"))
    mem = [g for g in groups if g.startswith("peak memory")]
    for group in mem:
        e = {n: b.get("extra_info", {}).get("peak_kib") for n, b in groups[group].items()}
        if e.get("peak_memory[native]") is not None and e.get("peak_memory[psutil]"):
            r = e["peak_memory[native]"] / e["peak_memory[psutil]"]
            lines.append("| peak memory <= psutil's (issue 3; at 50k) | %s | %.2f | 1.00 | %s |" % (
                group.rsplit(" ", 1)[-1], r, "yes" if r <= 1 else "**no**"))
    return lines


def render(data: dict, groups: Dict[str, Dict[str, dict]], plot_path: str) -> str:
    out = ["# procnet benchmarks", "",
           "Machine: %s. Run: %s." % (machine(data), data.get("datetime", "?")[:19]),
           "Ratios are medians divided by the reference contender's median, same run "
           "(lower is faster). Regenerate with `python benchmarks/run.py`.", "",
           "## Targets", ""] + targets(groups) + [""]
    be = break_even(groups)
    if be:
        out += ["## BPF owner source: one-shot break-even", ""] + be + [""]
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            out += [f.read().rstrip("\n"), ""]
    out += ["# The groups", ""]

    def key(group: str) -> Tuple[int, int, str]:
        scale = group.rsplit(" ", 1)[-1]
        return (SCALE_ORDER.index(scale) if scale in SCALE_ORDER else 99, 0, group)
    for group in sorted(groups, key=key):
        out += ["## %s" % group, ""]
        if group.startswith("peak memory"):
            out += memory(groups, group)
        elif group.startswith("import"):
            out += table(groups, group, ["import[procnet]", "import[psutil]"])
        elif group.startswith("cli -tulnp"):
            out += table(groups, group, ["listen_procnet", "listen_ss"])
        elif group.startswith("cli --json"):
            out += table(groups, group, ["json_procnet_python"])
        elif group.startswith("cli"):
            out += table(groups, group, ["cli_procnet", "cli_peer[ss]", "cli_peer[netstat]"])
        elif group.startswith("no owners"):
            out += table(groups, group, ["no_owners_core[procfs]", "no_owners_native[procfs]",
                                         "owners_floor"])
        elif group.startswith("threads"):
            out += table(groups, group, ["gil_one_thread"])
        elif group.startswith("listeners"):
            out += table(groups, group, ["listeners_native[procfs]"])
        elif group.startswith("export scrape"):
            out += table(groups, group, ["psutil", "poll_warm"])
        elif group.startswith("psutil compat all"):
            out += table(groups, group, ["psutil_all"])
        elif group.startswith("psutil compat process"):
            out += table(groups, group, ["psutil_process"])
        elif group.startswith("netns"):
            out += table(groups, group, ["one_ns", "ss_loop"])
        else:
            out += table(groups, group, ["owners_floor", "owners_native", "owners_psutil",
                                         "fields_psutil"])
        out.append("")
    series = per_socket(groups)
    if series:
        out += ["## µs per socket, full snapshot with owners", "",
                "| contender | " + " | ".join("%d sockets" % n for n, _ in max(series.values(), key=len)) + " |",
                "|---|" + "---|" * len(max(series.values(), key=len))]
        for name, pts in sorted(series.items()):
            out.append("| %s | %s |" % (name, " | ".join("%.2f" % us for _, us in pts)))
        msg = plot(series, plot_path)
        out += ["", msg or "![µs per socket](%s)" % os.path.relpath(plot_path, os.getcwd()), ""]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--plot", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "scaling.png"))
    ap.add_argument("--out", default="-", help="markdown output file (default: stdout)")
    a = ap.parse_args(argv)
    data, groups = load(a.json)
    text = render(data, groups, a.plot)
    if a.out == "-":
        sys.stdout.write(text)
    else:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
