"""Peak resident memory of this process, resettable, for CPU runners (Linux /proc interface).

Writing "5" to /proc/self/clear_refs resets the VmHWM high-water mark (Linux >= 4.0), so each
backend's peak can be read on its own within one benchmark process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> Optional[int]:
    """VmHWM in bytes, or None where /proc is not available."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
