"""Synthetic cases for the web view and picture tests: a fan-out with refusals, a view spike, a second community."""

from __future__ import annotations

from groomguard.events import BaseEvent
from groomguard.testing import EventFactory

KIDS = [f"kid{i:02d}" for i in range(10)]
GROWN = [f"grown{i}" for i in range(6)]


def fan_out_case(f: EventFactory, suspect: str = "groomer", children: int = 8, refused: int = 3) -> list[BaseEvent]:
    """An adult sends friend requests to `children` minors with no mutual contact; `refused` say no."""
    out: list[BaseEvent] = [f.joined(suspect), f.adult(suspect)]
    for kid in KIDS[:children]:
        out += [f.joined(kid), f.minor(kid)]
    for i, kid in enumerate(KIDS[:children]):
        out.append(f.contact(suspect, kid, request_id=f"r-{suspect}-{kid}", at=f.tick(hours=2)))
        out.append(f.answer(suspect, kid, "rejected" if i < refused else "accepted", request_id=f"r-{suspect}-{kid}"))
    # one adult friend: counted as an "other contact" on the graph
    out += [f.joined(GROWN[0]), f.adult(GROWN[0]), f.contact(suspect, GROWN[0], request_id=f"r-{suspect}-g0")]
    return out


def view_spike_case(f: EventFactory, viewer: str = "watcher", hours: int = 30) -> list[BaseEvent]:
    """Ordinary browsing for `hours`, then one hour of 80 views of eight children's posts."""
    out: list[BaseEvent] = [f.joined(viewer), f.adult(viewer)]
    for kid in KIDS[:8]:
        out += [f.joined(kid), f.minor(kid)]
    for g in GROWN:
        out += [f.joined(g), f.adult(g)]
    for h in range(hours):
        base = f.tick(hours=1)
        for i in range(4):
            author = KIDS[(h + i) % 8] if i % 4 == 0 else GROWN[(h + i) % len(GROWN)]
            out.append(f.view(viewer, author, at=base.replace(minute=i)))
    base = f.tick(hours=1).replace(minute=0)
    out += [f.view(viewer, KIDS[i % 8], at=base.replace(minute=i % 60, second=i // 60)) for i in range(80)]
    return out


def communities() -> list[BaseEvent]:
    """Three cases: 'groomer' (fan-out, 8 children) and 'watcher' (view spike) in school, 'other' in club."""
    school = EventFactory(community="school", platform="test")
    club = EventFactory(community="club", platform="forum")  # its own event ids
    return [
        *fan_out_case(school),
        *view_spike_case(school),
        *fan_out_case(club, suspect="other"),
    ]
