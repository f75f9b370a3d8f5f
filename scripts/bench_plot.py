#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""PNG plots, one per figure, from build/bench/results.csv via gnuplot.

Takes the latest row of every point (as bench_table.py does); a figure
whose benchmarks have no rows is left out. Params are numbers (bytes,
flows), plotted on a log2 x axis.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_table import load  # noqa: E402

# name, title, x label, y label, log y, panels; a panel is a y label and
# its lines: (legend, benchmark, "baseline" | "fastivc").
FIGURES = [
    ("fig10_send_size", "Throughput, data in memory (thesis Fig. 10)",
     "send size (bytes)", True, [("Gbit/s", [
         ("veth TCP", "send_size_throughput_ch4", "baseline"),
         ("fastivc, 2 channels", "send_size_throughput_ch2", "fastivc"),
         ("fastivc, 4 channels", "send_size_throughput_ch4", "fastivc"),
         ("fastivc, 8 channels", "send_size_throughput_ch8", "fastivc")])]),
    ("fig11_files", "nginx to curl, files from disk (thesis Fig. 11)",
     "file size (bytes)", True, [("MB/s", [
         ("veth TCP", "file_fetch_throughput", "baseline"),
         ("fastivc", "file_fetch_throughput", "fastivc")])]),
    ("fig12_channel_size", "Throughput against channel size, 4 channels, "
     "64 KiB sends (thesis Fig. 12)", "channel size (bytes)", False,
     [("Gbit/s", [
         ("veth TCP", "channel_size_throughput", "baseline"),
         ("fastivc", "channel_size_throughput", "fastivc")])]),
    ("latency", "Request/response latency", "message size (bytes)", True,
     [("us", [
         ("veth TCP p50", "rr_latency_p50", "baseline"),
         ("fastivc p50", "rr_latency_p50", "fastivc"),
         ("veth TCP p99", "rr_latency_p99", "baseline"),
         ("fastivc p99", "rr_latency_p99", "fastivc")])]),
    ("scale", "Concurrent flows, 64 KiB sends", "flows", False, [
        ("aggregate Gbit/s", [
            ("veth TCP", "scale_throughput", "baseline"),
            ("fastivc", "scale_throughput", "fastivc")]),
        ("machine CPU per Gbit/s (% of a core)", [
            ("veth TCP", "scale_cpu_per_gbit", "baseline"),
            ("fastivc", "scale_cpu_per_gbit", "fastivc")]),
        ("KiB per flow (kernel + agent)", [
            ("veth TCP", "scale_mem_per_flow", "baseline"),
            ("fastivc", "scale_mem_per_flow", "fastivc")])]),
]


def series(tables, env, bench, which):
    """[(x, y)] sorted by x; points without a number are skipped."""
    out = []
    for param, rows in tables.get((env, bench), {}).items():
        row = next(iter(rows.values()))
        try:
            out.append((float(param), float(row[which + "_value"])))
        except ValueError:
            continue
    return sorted(out)


def plot(tables, env, outdir, fig):
    name, title, xlabel, logy, panels = fig
    data = [[(legend, series(tables, env, bench, which))
             for legend, bench, which in lines] for _, lines in panels]
    if not any(pts for panel in data for _, pts in panel):
        return None
    png = os.path.join(outdir, name + ".png")
    gp = ["set terminal pngcairo size 900,%d" % (380 * len(panels)),
          "set output '%s'" % png, "set logscale x 2", "set grid",
          "set key top left", "set xlabel '%s'" % xlabel,
          "set multiplot layout %d,1 title '%s'" % (len(panels), title)]
    if logy:
        gp.append("set logscale y")
    for (ylabel, _), lines in zip(panels, data):
        plots = []
        for legend, pts in lines:
            if pts:
                plots.append("'-' with linespoints title '%s'" % legend)
        if not plots:
            continue
        gp.append("set ylabel '%s'" % ylabel)
        gp.append("plot " + ", ".join(plots))
        for _, pts in lines:
            if pts:
                gp += ["%g %g" % p for p in pts] + ["e"]
    gp.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(gp) + "\n", text=True,
                   check=True)
    return png


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default="build/bench/results.csv")
    ap.add_argument("--env", default="netns")
    ap.add_argument("--outdir", default="build/bench")
    args = ap.parse_args()
    tables = load(args.csv, [])
    for fig in FIGURES:
        png = plot(tables, args.env, args.outdir, fig)
        if png:
            print(png)


if __name__ == "__main__":
    main()
