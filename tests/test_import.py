"""``import lrdoctor`` stays framework-free, and missing frameworks give a useful error."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "keras", "lightning", "pytorch_lightning", "transformers", "tensorflow", "jax")


def test_import_lrdoctor_imports_no_framework():
    code = (
        "import sys, lrdoctor, lrdoctor.schedules, lrdoctor.torch, lrdoctor.keras\n"
        "import lrdoctor.preview\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import lrdoctor pulled in: {out.stdout.strip()}"


def test_missing_framework_names_the_extra():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import lrdoctor.torch\n"
        "try:\n    lrdoctor.torch.ScheduledLR\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'lrdoctor[torch]'" in out.stdout


def test_public_names_are_sorted():
    import lrdoctor
    import lrdoctor.schedules

    for module in (lrdoctor, lrdoctor.schedules):
        assert list(module.__all__) == sorted(module.__all__)
