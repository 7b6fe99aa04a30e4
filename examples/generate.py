"""Writes the demo community (examples/community.jsonl) from the seeded simulator; rerun to rebuild it."""

from __future__ import annotations

import argparse
from pathlib import Path

from groomguard.events import dump_event
from groomguard.testing.simulate import CommunitySpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("community.jsonl"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    events, truth = generate(CommunitySpec(seed=args.seed))
    with args.out.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(dump_event(event) + "\n")
    print(f"wrote {len(events)} events to {args.out}; planted groomers: {', '.join(sorted(truth.groomers))}")


if __name__ == "__main__":
    main()
