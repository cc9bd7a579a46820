"""Command line: ``python -m recsync.emulator --scenario NAME|FILE``."""

from __future__ import annotations

import argparse
import logging
import sys

from recsync.emulator.loading import load_scenario, shipped_scenario_names
from recsync.emulator.scenario import ScenarioError
from recsync.emulator.server import run_emulator


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve the emulator until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m recsync.emulator",
        description="Serve the Genesys Cloud emulator on a loopback address.",
    )
    parser.add_argument(
        "--scenario",
        default="default",
        help=f"shipped name ({', '.join(shipped_scenario_names())}) or a YAML file",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="wall seconds per platform second; 0.05 runs 20 times faster",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8080, help="TCP port to bind")
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow binding a non-loopback address (the emulator has no real auth)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        scenario = load_scenario(args.scenario)
        run_emulator(
            scenario,
            time_scale=args.time_scale,
            host=args.host,
            port=args.port,
            allow_non_loopback=args.allow_non_loopback,
        )
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
