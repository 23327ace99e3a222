"""``lrdoctor.integrations`` imports no framework, and a missing one names the extra."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "keras", "lightning", "pytorch_lightning", "transformers", "tensorflow")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_the_package_imports_no_framework():
    code = ("import sys, lrdoctor.integrations as i\n"
            "i.RunFiles('x'); dir(i)\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    assert _run(code) == ""


def test_missing_frameworks_name_their_extra():
    for module, blocked, extra in [("hf", "transformers", "hf"),
                                   ("lightning", "pytorch_lightning", "lightning")]:
        code = (f"import sys; sys.modules[{blocked!r}] = None; sys.modules['lightning'] = None\n"
                f"try:\n    import lrdoctor.integrations.{module}\n"
                "except ImportError as e:\n    print(e)\n")
        assert f"pip install 'lrdoctor[{extra}]'" in _run(code)
