"""The evaluation package and the CLI load their heavy dependencies only when used."""

import subprocess
import sys

import langchain_hybrid.evaluation as evaluation


def test_evaluation_and_cli_imports_stay_light() -> None:
    code = (
        "import sys, langchain_hybrid\n"
        "assert 'langchain_hybrid.evaluation' not in sys.modules\n"
        "from langchain_hybrid.evaluation import Example, load_dataset, collect_local, grade\n"
        "import langchain_hybrid.cli\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}\n"
        "               & {'torch', 'transformers', 'sklearn', 'rich'})\n"
        "assert not heavy, f'imported: {heavy}'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_public_name_resolves() -> None:
    for name in evaluation.__all__:
        assert getattr(evaluation, name) is not None
    assert "load_records" in dir(evaluation)
