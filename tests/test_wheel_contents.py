"""A wheel install has everything a checkout has: every module, the stylesheet and every bundled theme file
(the theme files were once outside the package, so `pip install mlxchat` had only the built-in theme).

The wheel is built from a copy of the package (so the shared checkout gets no build/ or egg-info folders),
without build isolation (the test extra provides setuptools) and installed with `--no-deps --no-index` into a
fresh venv: only the files are checked, nothing is imported there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shipped_files() -> set[str]:
    """What must be in the wheel: every module, stylesheet and theme file of the package, as relative paths."""
    package = ROOT / "mlxchat"
    wanted = [*package.rglob("*.py"), *package.rglob("*.tcss"), *(package / "themes").glob("*.toml")]
    return {path.relative_to(ROOT).as_posix() for path in wanted if "__pycache__" not in path.parts}


def test_the_wheel_installs_every_module_stylesheet_and_theme(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "mlxchat", source / "mlxchat", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=240,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("mlxchat-*.whl")

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    install = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=240,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())

    missing = sorted(name for name in shipped_files() if not (site / name).is_file())
    assert not missing, f"not in the installed wheel: {missing}"
    themes = sorted(path.name for path in (site / "mlxchat" / "themes").glob("*.toml"))
    assert themes == sorted(path.name for path in (ROOT / "themes").glob("*.toml")) and len(themes) >= 3
