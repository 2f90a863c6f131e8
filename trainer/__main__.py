"""`dbd-train` (also `python -m trainer`): the CLI started so that an interrupt during start-up is one line."""

from runtime.interrupts import launch


def main() -> None:
    launch("trainer.cli", "dbd-train")


def prepare() -> None:
    launch("trainer.prepare", "dbd-prepare")


if __name__ == "__main__":
    main()
