"""``REPORT.md`` of the NanoTrack FD job, from its ``report.json``."""
from __future__ import annotations

from typing import Any


def _rewrites(ex: dict[str, Any]) -> str:
    done = [f"{', '.join(ex['folded'])} folded into the next block"] if ex.get("folded") else []
    done += ["the head's two branches as one grouped chain"] if ex.get("fused") else []
    return f" (written with {' and '.join(done)})" if done else ""


def render_markdown(r: dict[str, Any]) -> str:
    ev, ex, ft = r["evaluate"], r["export"], r["finetune"]
    base, ours = ev["trackers"]["NanoTrackV2"], ev["trackers"]["NanoTrackV2-FD"]
    sets = [ev["selection"]] if isinstance(ev["selection"], str) else ev["selection"]   # a string before 12-07
    lines = [
        f"# NanoTrack v2, FD at keep-ratio {r['rate']:.2f}"
        + (f", {len(r['fit']['drops']) // 2} layers fewer a head tower" if r["fit"].get("drops") else "")
        + ", inside cv2.TrackerNano"
        + (" (label-free: no box read; scored against the teacher's tracks)"
           if r["label_free"] else ""), "",
        f"{r['cpu']} ({r['isa']}), {r['threads']} threads. Selection sets, pooled: "
        f"{', '.join(f'`{x}`' for x in sets)} ({ev.get('sequences', '?')} sequences, "
        f"{ev['frames']} frames); the test set is not read by this job. fps: 1 / median `update` time, both "
        f"pairs timed side by side on the same decoded frames.", "",
        "| tracker | MMACs (one update) | ONNX params | MB | fps | speed-up (quartiles) | mean AUC | AUC diff (s.e.) "
        "| precision |", "|---|---|---|---|---|---|---|---|---|",
        f"| NanoTrack v2 (original pair) | {r['teacher_macs'] / 1e6:.1f} | - | - | {base['fps']:.0f} | 1.00 | "
        f"{base['auc']:.3f} | - | {base['precision']:.3f} |",
        f"| ours: `backbone.onnx` + `head.onnx` | {ex['macs'] / 1e6:.1f} | {ex['params']:,} | {ex['mb']:.2f} | "
        f"{ours['fps']:.0f} | {ours['speedup']:.2f} ({ours['speedup_q1']:.2f}-{ours['speedup_q3']:.2f}) | "
        f"{ours['auc']:.3f} | {ours['auc_diff']:+.3f} ({ours['auc_diff_se']:.3f}) | {ours['precision']:.3f} |", "",
        f"Export check: worst relative difference {ex['export_worst']:.1e} between PyTorch and the ONNX files"
        + _rewrites(ex) + ".", "",
        "## Distillation", "",
        f"Best held-out epoch {ft['best_epoch']} (epoch 0: the closed-form fits alone), held-out loss "
        f"{ft['best_heldout']:.4f}. Losses are relative to the teacher's own spread.", "",
        "| epoch | training loss | held-out loss |", "|---|---|---|"]
    lines += [f"| {h['epoch']} | {'-' if h['train'] is None else format(h['train'], '.4f')} | {h['heldout']:.4f} |"
              for h in ft["history"]]
    if r["fit"].get("drops"):
        lines += ["", "## Head layers dropped", "", "| tower | layer | tower output's error after the refit |",
                  "|---|---|---|"]
        lines += [f"| `{d['tower']}` | {d['layer']} | {d['error']:.3f} |" for d in r["fit"]["drops"]]
    lines += ["", "## Widths", "", "| producer | part | size | kept | error, old weights | error, refit |",
              "|---|---|---|---|---|---|"]
    lines += [f"| `{w['producer']}` | {w['part']} | {w['size']} | {w['kept']} | {w['error_dropped']:.3f} | "
              f"{w['error_fit']:.3f} |" for w in r["fit"]["widths"]]
    lines += ["", "## Time", "", "| stage | s |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in r["stage_seconds"].items()]
    lines.append(f"| total | {r['elapsed_s']:.0f} |")
    return "\n".join(lines) + "\n"
