"""Importing the package stays cheap: torch and transformers load only with a local model."""

import subprocess
import sys


def test_import_does_not_load_torch_or_transformers() -> None:
    code = (
        "import sys, langchain_hybrid\n"
        "from langchain_hybrid import ChatTransformers, ChatHybrid, ConfidenceGate\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'})\n"
        "assert not heavy, f'imported at package import: {heavy}'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
