"""What a user who has only the repository reads: no path into our development machines' shared
folder, and the method credited to its authors."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "MODEL_CARD.md", ROOT / "ARCHITECTURE.md", *sorted((ROOT / "examples").iterdir())]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_and_examples_never_point_into_the_development_machines(path):
    assert "../shared" not in path.read_text(errors="replace")


def _help_invocations(app) -> list[list[str]]:
    """--help of each subcommand, or of the app itself when it has one command."""
    import typer

    names = getattr(typer.main.get_command(app), "commands", {})
    return [[n, "--help"] for n in names] or [["--help"]]


def test_no_help_text_points_into_the_development_machines():
    from bench.cli import app as bench
    from export.cli import app as export
    from runtime.cli import app as rt
    from trainer.cli import app as train
    from trainer.prepare import app as prepare

    for app in (rt, bench, export, train, prepare):
        for args in _help_invocations(app):
            res = CliRunner().invoke(app, args, terminal_width=200)
            assert res.exit_code == 0, (args, res.output)
            assert "../shared" not in res.output, args


def test_the_method_is_credited_to_its_authors():
    text = (ROOT / "README.md").read_text()
    assert "Cun" in text and "Pun" in text and "2007.08113" in text and "@inproceedings{cun2020defocus" in text
    assert "Zhao et al.'s depth-distillation" not in text
