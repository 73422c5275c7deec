"""The chart of docs/performance.md: hot_consume throughput against client count."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(sweep: dict[str, list[dict[str, float]]], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    styles = {
        "ringfence": ("Ringfence /allocation/consume over HTTP", "#1f6f43", "o"),
        "raw_hot_update": ("raw_hot_update: pgbench row-lock UPDATE", "#9a3b26", "s"),
    }
    for name, points in sweep.items():
        label, colour, marker = styles.get(name, (name, None, "x"))
        clients = [point["clients"] for point in points]
        rates = [point["ops_per_s"] for point in points]
        axes.plot(clients, rates, marker=marker, color=colour, label=label, linewidth=2)
    axes.set_xscale("log", base=2)
    axes.set_xticks([int(p["clients"]) for p in sweep["ringfence"]])
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.set_xlabel("concurrent clients (one product, one allocation, consume 1 each)")
    axes.set_ylabel("committed operations per second")
    axes.set_title("Hot-SKU consumes: Ringfence against one locked row")
    axes.grid(True, alpha=0.3)
    axes.set_ylim(bottom=0)
    axes.legend(loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
