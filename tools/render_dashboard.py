#!/usr/bin/env python3
"""Render a Grafana dashboard JSON to a PNG from a live Prometheus, without Grafana.

Runs every panel query as a range query (Grafana variables substituted as in
check_dashboards.py), lays the panels out on the dashboard's 24-column grid by gridPos and draws
time series as lines (legend from legendFormat) and stat panels as their last values, in a dark
Grafana-like style. Panels without data say "No data" in red.

    python3 tools/render_dashboard.py dashboards/overview.json overview.png \
        --prometheus http://127.0.0.1:9090 --range 30m

Needs matplotlib (pip install matplotlib).
"""
import argparse
import datetime as dt
import json
import math
import pathlib
import re
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_dashboards import panels, parse_dur, prom, substitute, var_values  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BG, PANEL, GRID, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#d8d9da", "#8e8e8e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a", "#c4162a", "#1f60c4"]


def si(v):
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def fmt(v, unit):
    """Format a value in a Grafana unit (the few the dashboards use)."""
    if v is None or not math.isfinite(v):
        return "NaN"
    if unit == "percentunit":
        return f"{v * 100:.3g}%"
    if unit == "s":
        if v == 0:
            return "0 s"
        if abs(v) < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if abs(v) < 1:
            return f"{v * 1e3:.3g} ms"
        if abs(v) < 120:
            return f"{v:.3g} s"
        if abs(v) < 7200:
            return f"{v / 60:.3g} min"
        return f"{v / 3600:.3g} h"
    if unit == "bytes":
        for div, suf in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(v) >= div:
                return f"{v / div:.3g} {suf}"
        return f"{v:.0f} B"
    if unit == "ops":
        return f"{si(v)}/s"
    if unit == "sci":
        return f"{v:.2e}"
    return si(v)


def legend(fmt_str, labels):
    if not fmt_str or fmt_str == "__auto":
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
        return labels.get("__name__", "") + (f"{{{inner}}}" if inner else "") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt_str)


def mapped(v, mappings):
    for mp in mappings or []:
        if mp.get("type") == "value":
            key = f"{v:g}"
            if key in mp.get("options", {}):
                return mp["options"][key].get("text", key)
    return None


def style(ax, title):
    ax.set_facecolor(PANEL)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=7)
    ax.set_title(title, color=TEXT, fontsize=9, loc="left", pad=4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dashboard")
    ap.add_argument("out")
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--range", default="30m")
    ap.add_argument("--rate-interval", default="30s")
    ap.add_argument("--points", type=int, default=240, help="samples per series")
    a = ap.parse_args()

    dash = json.loads(pathlib.Path(a.dashboard).read_text())
    vals = var_values(dash)
    end = time.time()
    span = parse_dur(a.range)
    start = end - span
    step = max(1, int(span / a.points))
    interval = f"{step}s"

    plist = list(panels(dash))
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in plist)
    fig = plt.figure(figsize=(20, 0.42 * height + 0.6), facecolor=BG)
    gs = GridSpec(height, 24, figure=fig, left=0.045, right=0.99, bottom=0.02,
                  top=1 - 0.5 / (0.42 * height + 0.6), hspace=2.2, wspace=0.6)
    fig.suptitle(f"{dash['title']}   ·   last {a.range}   ·   "
                 f"{dt.datetime.fromtimestamp(end, dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
                 color=TEXT, fontsize=12, x=0.02, ha="left")
    empty = 0
    for p in plist:
        g = p["gridPos"]
        cell = gs[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]]
        if p.get("type") == "row":
            ax = fig.add_subplot(cell)
            ax.axis("off")
            ax.text(0, 0.5, p.get("title", ""), color=TEXT, fontsize=11, weight="bold",
                    va="center", transform=ax.transAxes)
            continue
        ax = fig.add_subplot(cell)
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        series = []
        for t in p.get("targets", []):
            q = substitute(t["expr"], vals, a.rate_interval, interval, a.range)
            r = prom(a.prometheus, "/api/v1/query_range", query=q, start=f"{start:.3f}",
                     end=f"{end:.3f}", step=step)
            for s in r.get("data", {}).get("result", []):
                pts = [(float(x), float(y)) for x, y in s["values"]]
                pts = [(x, y) for x, y in pts if math.isfinite(y)]
                if pts:
                    series.append((legend(t.get("legendFormat"), s["metric"]), pts))
        series.sort(key=lambda s: s[0])
        style(ax, p.get("title", ""))
        if not series:
            empty += 1
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, "No data", color="#f2495c", ha="center", va="center",
                    transform=ax.transAxes)
            continue
        if p.get("type") == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            maps = p.get("fieldConfig", {}).get("defaults", {}).get("mappings")
            shown = series[:8]
            cols = min(len(shown), 4)
            rows = math.ceil(len(shown) / cols)
            for i, (name, pts) in enumerate(shown):
                v = pts[-1][1]
                text = mapped(v, maps) or fmt(v, unit)
                color = {"on": "#73bf69", "off": "#f2495c"}.get(text, "#73bf69")
                x = (i % cols + 0.5) / cols
                y = 1 - (i // cols + 0.55) / rows
                big = 20 if len(shown) == 1 else 13
                ax.text(x, y, text, color=color, fontsize=big, ha="center", va="center",
                        weight="bold", transform=ax.transAxes)
                if len(shown) > 1:
                    ax.text(x, y - 0.32 / rows, name, color=MUTED, fontsize=7, ha="center",
                            va="center", transform=ax.transAxes)
            continue
        for i, (name, pts) in enumerate(series):
            xs = [dt.datetime.fromtimestamp(x, dt.timezone.utc) for x, _ in pts]
            ax.plot(xs, [y for _, y in pts], color=PALETTE[i % len(PALETTE)], lw=1.2,
                    label=name)
        ax.grid(color=GRID, lw=0.5)
        tick = "%H:%M:%S" if span <= 900 else "%H:%M"
        ax.xaxis.set_major_formatter(mdates.DateFormatter(tick, tz=dt.timezone.utc))
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=6))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p, u=unit: fmt(v, u)))
        d = p.get("fieldConfig", {}).get("defaults", {})
        if "min" in d and "max" in d:
            ax.set_ylim(d["min"], d["max"] * 1.02)
        if len(series) <= 12:
            ax.legend(fontsize=6, loc="upper left", ncol=min(4, len(series)), frameon=False,
                      labelcolor=TEXT)
    fig.savefig(a.out, dpi=90, facecolor=BG)
    print(f"wrote {a.out}: {len(plist)} panels, {empty} without data")


if __name__ == "__main__":
    main()
