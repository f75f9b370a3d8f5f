#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""The goal table of the performance issue from build/bench/results.csv.

One row per goal: where it is measured, the baseline and fastivc medians
(of the alternating rounds of one run: each results row is one run's
medians), the ratio (higher is better for fastivc), the goal and whether
it is met; throughputs carry the CPU cost of the whole path (CPU seconds
per GB moved) of both sides. The latest row of each point counts, as in
bench_table.py. A goal without a row is "not measured", or "skipped" with
the reason a benchmark recorded in the skipped file; a figure is not a
test, so the exit status says only whether the table could be made.
"""
import argparse
import csv
import os
import sys

# (env, what, benchmark, param, baseline, goal ratio or None, cpu benchmark)
GOALS = [
    ("xen", "64 B request/response p50", "rr_latency_p50", "64",
     "netfront_tcp", 3.0, None),
    ("xen", "64 B request/response p99", "rr_latency_p99", "64",
     "netfront_tcp", 1.5, None),
    ("xen", "connection rate", "connection_rate", "1", "netfront_tcp", 0.9,
     None),
    ("xen", "bulk, iperf3 -P 1 (vchan: 64 KiB writes)", "iperf3_throughput", "P=1",
     "libxenvchan", 0.45, "iperf3_cpu"),
    ("xen", "bulk, 16 KiB sends", "send_throughput", "16384",
     "libxenvchan", 0.45, "send_cpu"),
    ("xen", "bulk, 1 MiB sends", "send_throughput", "1048576",
     "libxenvchan", 0.45, "send_cpu"),
    ("xen", "bulk, iperf3 -P 1 (report)", "iperf3_throughput", "P=1",
     "netfront_tcp", None, "iperf3_cpu"),
    ("xen", "bulk, 16 KiB sends (report)", "send_throughput", "16384",
     "netfront_tcp", None, "send_cpu"),
    ("xen", "bulk, 1 MiB sends (report)", "send_throughput", "1048576",
     "netfront_tcp", None, "send_cpu"),
    ("netns", "iperf3 -P 1", "iperf3_throughput", "P=1", "veth_tcp", 1.0,
     "iperf3_cpu"),
    ("netns", "iperf3 -P 4", "iperf3_throughput", "P=4", "veth_tcp", 1.0,
     "iperf3_cpu"),
    ("netns", "64 B request/response p50", "rr_latency_p50", "64",
     "veth_tcp", 0.7, None),
    ("netns", "connection rate", "connection_rate", "1", "veth_tcp", 0.5,
     None),
    ("netns", "nginx under wrk (requests/s)", "server_nginx_wrk", "1KiB",
     "veth_tcp", 0.9, None),
    ("netns", "MariaDB under sysbench oltp_read_write (transactions/s)",
     "server_mariadb_sysbench", "oltp_read_write", "veth_tcp", 0.9, None),
] + [
    # CPU seconds, lower is better: the ratio is TCP's over fastivc's.
    ("netns", "server CPU blocked on a slow reader, %s" % style,
     "blocked_server_cpu", style, "veth_tcp", 0.5, None)
    for style in ("blocking", "poll", "select", "epoll-lt", "epoll-et",
                  "redis")
]
WHERE = {"xen": "Xen lab", "netns": "one kernel"}


def load(path):
    """{(env, benchmark, param, baseline): row}, the latest row winning."""
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows[(row["env"], row["benchmark"], row["param"],
                  row["baseline"])] = row
    return rows


def load_skipped(path):
    """{benchmark: why} from "benchmark why..." lines."""
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return dict(line.rstrip("\n").split(" ", 1) for line in f
                    if " " in line)


def status(row, goal):
    try:
        r = float(row["ratio"])
    except ValueError:
        return "no ratio"
    if goal is None:
        return "report"
    return "met" if r >= goal else "MISSED"


def table(rows, skipped, envs):
    out = ["| where | goal | baseline | baseline value | fastivc | unit "
           "| ratio | goal ratio | status | CPU s/GB baseline / fastivc |",
           "|---|---|---|---:|---:|---|---:|---:|---|---:|"]
    for env, what, bench, param, base, goal, cpu in GOALS:
        if envs and env not in envs:
            continue
        row = rows.get((env, bench, param, base))
        want = ">= %.2fx" % goal if goal is not None else "-"
        if not row:
            why = skipped.get(bench)
            st = "SKIPPED: " + why if why else "not measured"
            out.append("| %s | %s | %s | | | | | %s | %s | |"
                       % (WHERE[env], what, base, want, st))
            continue
        cost = ""
        c = rows.get((env, cpu, param, base)) if cpu else None
        if c:
            cost = "%s / %s" % (c["baseline_value"], c["fastivc_value"])
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            WHERE[env], what, base, row["baseline_value"],
            row["fastivc_value"], row["unit"], row["ratio"], want,
            status(row, goal), cost))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default="build/bench/results.csv")
    ap.add_argument("--skipped", help="file of 'benchmark why' lines")
    ap.add_argument("--env", action="append", default=[],
                    help="only this env's goals (repeatable; default all)")
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    try:
        rows = load(args.csv)
    except FileNotFoundError:
        sys.exit("bench_goals: %s not found; run a benchmark first"
                 % args.csv)
    text = ("Goals of the performance issue (ratios: higher is better for "
            "fastivc; medians of alternating rounds in one run; CPU: "
            "seconds of the whole path per GB moved)\n\n"
            + table(rows, load_skipped(args.skipped), args.env))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write("<!-- generated by scripts/bench_goals.py from %s -->\n\n"
                    % args.csv)
            f.write(text + "\n")


if __name__ == "__main__":
    main()
