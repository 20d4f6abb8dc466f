"""``sweep.md`` and ``sweep.png`` from a NanoTrack sweep's ``sweep.json`` (everything shown is in the JSON)."""
from __future__ import annotations

import os
from typing import Any

from ..files import save_figure


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_markdown(sweep: dict[str, Any]) -> str:
    rows = sweep["rows"]
    base = sweep["settings"]["baseline"]
    lines = [
        "# NanoTrack v2: closed-form FD cuts inside cv2.TrackerNano", "",
        f"{len(sweep['sequences'])} sequences, {sweep['frames']} frames of {sweep['benchmark']} at {sweep['root']}; "
        f"{sweep['cpu']} ({sweep['isa']}), {sweep['threads']} threads. fps: 1 / median `update` time, every "
        f"tracker timed side by side on the same decoded frames. Against {base or 'nothing'}: the speed-up is the "
        f"median over sequence runs of the two median update times' ratio (quartiles in brackets), the AUC "
        f"difference has its paired bootstrap s.e. over sequences. MACs: one update (search backbone + head).", "",
        "| tracker | keep-ratio | params | MMACs | MB | fps | speed-up (quartiles) | mean AUC | AUC diff (s.e.) "
        "| precision |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        diff = f"{r['auc_diff']:+.3f} ({r['auc_diff_se']:.3f})" if "auc_diff" in r else "-"
        speedup = f"{r['speedup']:.2f} ({r['speedup_q1']:.2f}-{r['speedup_q3']:.2f})" if "speedup" in r else "-"
        lines.append(f"| {name} | {_num(r['rate'], '.2f')} | {r['params']:,} | "
                     f"{_num(r['macs'] and r['macs'] / 1e6, '.1f')} | {r['mb']:.2f} | {r['fps']:.0f} | "
                     f"{speedup} | {r['auc']:.3f} | {diff} | {r['precision']:.3f} |")
    cuts = {n: r for n, r in rows.items() if r["kind"] == "nanotrack-fd"}
    if cuts:
        first = next(iter(cuts.values()))["widths"]
        lines += ["", "Widths cut (kept channels; relative RMS error of the span's output with the kept channels "
                      "and the old weights -> after the refit, on the calibration pairs):", "",
                  "| width | part | size | " + " | ".join(f"r={r['rate']:.2f}" for r in cuts.values()) + " |",
                  "|---|---|---|" + "---|" * len(cuts)]
        for i, w in enumerate(first):
            cells = [f"{r['widths'][i]['kept']} ({r['widths'][i]['error_dropped']:.3f} -> "
                     f"{r['widths'][i]['error_fit']:.3f})" for r in cuts.values()]
            lines.append(f"| {w['producer']} | {w['part']} | {w['size']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_plot(sweep: dict[str, Any], path: str) -> None:
    """Mean AUC against fps: the cuts as one line (labelled by keep-ratio), each peer as its own marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sweep["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    cuts = sorted((r for r in rows.values() if r["kind"] == "nanotrack-fd"), key=lambda r: r["fps"])
    if cuts:
        ax.plot([r["fps"] for r in cuts], [r["auc"] for r in cuts], "o-", color="tab:blue",
                label="NanoTrack v2, FD cut (cv2.TrackerNano)")
        for r in cuts:
            ax.annotate(f"r={r['rate']:.2f}", (r["fps"], r["auc"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
    markers = {"nanotrack": ("*", "tab:blue", "NanoTrack v2, original pair"), "vittrack": ("s", "tab:red", "VitTrack"),
               "nanotrack-distilled": ("D", "tab:green", "NanoTrack v2, FD cut + distillation (ours)")}
    labelled = set()
    for name, r in rows.items():
        if r["kind"] in markers:
            marker, color, label = markers[r["kind"]]
            ax.plot(r["fps"], r["auc"], marker, color=color, markersize=11, linestyle="none",
                    label=None if r["kind"] in labelled else label)
            labelled.add(r["kind"])
            if r["kind"] == "nanotrack-distilled":   # several may share the plot: say which
                ax.annotate(name.replace("-distilled", ""), (r["fps"], r["auc"]), textcoords="offset points",
                            xytext=(6, -10), fontsize=7, color=color)
    ax.set_xlabel(f"fps (1 / median update, {sweep['threads']} threads)")
    ax.set_ylabel("mean AUC")
    where = os.path.join(*sweep["root"].split(os.sep)[-2:])
    ax.set_title(f"AUC against speed: {len(sweep['sequences'])} sequences of {where}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
