"""The interpreter's pace while engines run: the garbage collector's young threshold, the GIL's switch interval.

Both are process-wide, so they are set while any engine runs and given back when the last one stops.

- An engine keeps millions of long-lived objects (community state, detector memory) and allocates a few
  short-lived ones per event, nearly all freed by reference counting. At Python's default, a young
  collection every 700 net allocations (and the older ones it triggers) took 12 % of a replay's time,
  walking the same surviving objects again and again.
- The SQLite writer thread gives the GIL back around every statement and waits for it again behind
  the busy event loop, up to the switch interval each time (5 ms by default): it fell behind, and the
  engine then waited for it.
"""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pace:
    """What one engine asks for; 0 in a field asks nothing of that knob."""

    gc_young_threshold: int
    switch_interval_us: int


_asked: list[Pace] = []
_saved: tuple[tuple[int, int, int], float] | None = None


def _apply() -> None:
    assert _saved is not None
    (young, older, oldest), interval = _saved
    thresholds = [p.gc_young_threshold for p in _asked if p.gc_young_threshold]
    intervals = [p.switch_interval_us / 1e6 for p in _asked if p.switch_interval_us]
    gc.set_threshold(max([young, *thresholds]), older, oldest)
    sys.setswitchinterval(min([interval, *intervals]))


def hold(pace: Pace) -> None:
    """An engine starts: the highest young threshold and the shortest switch interval asked for apply."""
    global _saved
    if not _asked:
        _saved = (gc.get_threshold(), sys.getswitchinterval())
    _asked.append(pace)
    _apply()
    log.debug(
        "interpreter: gc young threshold %d, switch interval %.6f s", gc.get_threshold()[0], sys.getswitchinterval()
    )


def release(pace: Pace) -> None:
    """An engine stops: drop its ask; the last one gives the interpreter its own settings back."""
    global _saved
    if pace not in _asked:
        return
    _asked.remove(pace)
    _apply()  # with no ask left, exactly the saved settings
    if not _asked:
        _saved = None
