"""`dbd-rt` (also `python -m runtime`): the CLI started so that an interrupt during start-up is one line."""

from runtime.interrupts import launch


def main() -> None:
    launch("runtime.cli", "dbd-rt")


if __name__ == "__main__":
    main()
