"""`dbd-train` (also `python -m trainer`): the CLI started so that an interrupt during start-up is one line."""

from runtime.interrupts import launch


def main() -> None:
    launch("trainer.cli", "dbd-train")


if __name__ == "__main__":
    main()
