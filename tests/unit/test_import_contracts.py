"""The layering of STYLE.md holds: pyproject.toml's import contracts are all kept.

``make check`` runs the same command; here it runs with every ``make test`` too, so a
framework imported into the domain or SQL written outside storage fails the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout
