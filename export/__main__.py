"""`dbd-export` (also `python -m export`): the CLI started so that an interrupt during start-up is one line."""

from runtime.interrupts import launch


def main() -> None:
    launch("export.cli", "dbd-export")


if __name__ == "__main__":
    main()
