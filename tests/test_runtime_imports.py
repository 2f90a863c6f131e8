"""The runtime (and the bench that drives it) must work on a machine without torch."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "timm", "torchvision"):
                raise ImportError(f"{name} is unavailable in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    import runtime
    mods = [m.name for m in pkgutil.walk_packages(runtime.__path__, "runtime.")]
    for name in mods:
        importlib.import_module(name)
    import bench.cli, bench.fps, bench.evaluate, bench.clips, bench.machine
    assert "torch" not in sys.modules
    print(len(mods))
    """
)


def test_every_runtime_module_imports_without_torch():
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10


def test_torch_backend_without_torch_says_what_to_install():
    code = BLOCK_TORCH.split("import runtime")[0] + textwrap.dedent(
        """
        from runtime.backends import BackendError, open_backend
        try:
            open_backend(__import__("pathlib").Path("trainer/checkpoints/dbd_lite0_320/best.pt"), "torch")
        except BackendError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "pip install 'dbd-rt[train]'" in out.stdout, out.stderr
