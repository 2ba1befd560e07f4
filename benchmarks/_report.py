"""What every benchmark records about where it ran, and how it writes its result file."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return platform.processor() or "cpu"


def default_path(prefix: str, folder: Path = RESULTS) -> Path:
    """<folder>/<prefix>-<today>.json, by default in benchmarks/results/"""
    return folder / f"{prefix}-{datetime.date.today().isoformat()}.json"


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {path}")
    return path
