"""Machine description recorded beside every benchmark result."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def machine_info() -> dict[str, str]:
    """CPU model, cores, Python and key package versions, date."""
    import numpy
    import pandapower
    import scipy

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandapower": pandapower.__version__,
    }


def machine_markdown() -> str:
    """The machine description as a markdown list."""
    return "\n".join(f"- {k}: {v}" for k, v in machine_info().items())


def write_result(name: str, text: str) -> Path:
    """Write a benchmark's markdown to ``benchmarks/results/<name>`` and print it."""
    out = Path(__file__).resolve().parent / "results" / name
    out.write_text(text, encoding="utf-8")
    print(text)
    return out
