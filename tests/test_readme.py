"""README's promise: two Quickstart commands, the second being what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_second():
    first, second = _quickstart_commands()
    assert "dbd-rt video runtime/samples/cuhk_pan.mp4" in first
    test_command = second.split("&& ", 1)[1].split(". .venv/bin/activate && ", 1)[-1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_quickstart_inputs_ship_with_the_repository():
    assert (ROOT / "runtime" / "samples" / "cuhk_pan.mp4").stat().st_size < 2_000_000
    assert (ROOT / "runtime" / "models" / "dbd_lite0_320.onnx").is_file()
