#!/usr/bin/env python3
"""Plot latency percentiles against offered load from load-generator JSON results.

Reads the files written by `cargo run --release --example loadgen -- run ... --json FILE`
(one file per load level and target), and writes an SVG with the client round-trip
p50 / p99 / p99.9 against offered messages per second, one line per target (cuedeck and
the echo baseline), plus cuedeck's in-engine latency (each card's `engine_us`) on a log
scale. Python standard library only.

    python3 scripts/plot_latency.py benches/results/run-*.json -o benches/results/latency_vs_load.svg
"""

import argparse
import json
import math
import sys

WIDTH, HEIGHT = 860, 520
LEFT, RIGHT, TOP, BOTTOM = 80, 220, 40, 60

SERIES = [
    # (target, json key, percentile key, label, colour, dash)
    ("cuedeck", "client_rtt", "p50_us", "cuedeck RTT p50", "#1f77b4", ""),
    ("cuedeck", "client_rtt", "p99_us", "cuedeck RTT p99", "#1f77b4", "6,3"),
    ("cuedeck", "client_rtt", "p99_9_us", "cuedeck RTT p99.9", "#1f77b4", "2,3"),
    ("echo", "client_rtt", "p50_us", "echo RTT p50", "#ff7f0e", ""),
    ("echo", "client_rtt", "p99_us", "echo RTT p99", "#ff7f0e", "6,3"),
    ("echo", "client_rtt", "p99_9_us", "echo RTT p99.9", "#ff7f0e", "2,3"),
    ("cuedeck", "card_engine_us", "p50_us", "cuedeck engine p50", "#2ca02c", ""),
    ("cuedeck", "card_engine_us", "p99_us", "cuedeck engine p99", "#2ca02c", "6,3"),
]


def load(paths):
    runs = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            r = json.load(f)
        if r.get("mode") == "run":
            runs.append(r)
    return runs


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot(runs, out, title):
    points = {}
    for target, key, pk, label, colour, dash in SERIES:
        pts = []
        for r in runs:
            if r.get("target") != target:
                continue
            v = (r.get(key) or {}).get(pk)
            if v:
                pts.append((float(r["offered_msgs_per_s"]), float(v)))
        if pts:
            points[(target, key, pk)] = sorted(pts)
    if not points:
        sys.exit("no run results with latencies")
    xs = [x for pts in points.values() for x, _ in pts]
    ys = [y for pts in points.values() for _, y in pts]
    x_max = max(xs) * 1.05
    y_lo = 10 ** math.floor(math.log10(max(min(ys), 1)))
    y_hi = 10 ** math.ceil(math.log10(max(ys)))
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x):
        return LEFT + pw * x / x_max

    def sy(y):
        y = max(y, y_lo)
        return TOP + ph * (1 - (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15">{esc(title)}</text>',
    ]
    # Axes and grid: log y (decades), linear x.
    decade = y_lo
    while decade <= y_hi * 1.0001:
        y = sy(decade)
        svg.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{decade / 1000:g} ms" if decade >= 1000 else f"{decade:g} µs"
        svg.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        decade *= 10
    raw = x_max / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    for i in range(int(x_max // step) + 1):
        xv = step * i
        x = sx(xv)
        svg.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        svg.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{xv:,.0f}</text>')
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    svg.append(
        f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "offered load (inbound messages per second, all calls)</text>"
    )
    svg.append(
        f'<text transform="translate(18,{TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
        "latency (log scale)</text>"
    )
    legend_y = TOP + 10
    for target, key, pk, label, colour, dash in SERIES:
        pts = points.get((target, key, pk))
        if not pts:
            continue
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        svg.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for x, y in pts:
            svg.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
        lx = LEFT + pw + 14
        svg.append(
            f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 28}" y2="{legend_y}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
        )
        svg.append(f'<text x="{lx + 34}" y="{legend_y + 4}">{esc(label)}</text>')
        legend_y += 20
    svg.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(svg) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="loadgen run results (JSON)")
    ap.add_argument("-o", "--output", default="latency_vs_load.svg")
    ap.add_argument("--title", default="cuedeck vs echo baseline: latency percentiles vs load")
    a = ap.parse_args()
    plot(load(a.files), a.output, a.title)
    print(a.output)


if __name__ == "__main__":
    main()
