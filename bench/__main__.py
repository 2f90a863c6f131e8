"""`dbd-bench` (also `python -m bench`): the CLI started so that an interrupt during start-up is one line."""

from runtime.interrupts import launch


def main() -> None:
    launch("bench.cli", "dbd-bench")


if __name__ == "__main__":
    main()
