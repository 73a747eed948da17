"""The custom import-linter contract (tools/importlinter_contracts.py) finds the cycles that
import-linter's sibling contract cannot see, and the project's contracts hold."""

import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

from tools.importlinter_contracts import AcyclicModulesContract, strongly_connected_components

REPO = Path(__file__).resolve().parents[1]


def test_strongly_connected_components():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert strongly_connected_components(graph, graph.__getitem__) == [["a", "b", "c"], ["e"]]


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _check(name: str, container: str):
    contract = AcyclicModulesContract(name="test", session_options={},
                                      contract_options={"containers": [container]})
    return contract.check(grimp.build_graph(name, cache_dir=None), verbose=False)


def test_a_cycle_between_a_package_and_its_own_module_is_found(tmp_path, monkeypatch):
    # the shape of a real circle medsyn had: the package imports its module at the top, the
    # module takes a name from the package inside a function
    _package(tmp_path, {
        "cyc/__init__.py": "",
        "cyc/features/__init__.py": "from cyc.features.ssl import encoder\nDEVICE = 'cpu'\n",
        "cyc/features/ssl.py": """
            def encoder():
                from cyc.features import DEVICE
                return DEVICE
            """,
        "cyc/other.py": "import cyc.features\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    check = _check("cyc", "cyc")
    assert not check.kept
    [cycle] = check.metadata["cycles"]
    assert cycle["modules"] == ["cyc.features", "cyc.features.ssl"]
    assert ("cyc.features.ssl", "cyc.features", [3]) in cycle["imports"]


def test_an_acyclic_package_keeps_the_contract(tmp_path, monkeypatch):
    _package(tmp_path, {
        "tidy/__init__.py": "",
        "tidy/base.py": "X = 1\n",
        "tidy/top.py": "def f():\n    from tidy.base import X\n    return X\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _check("tidy", "tidy").kept


@pytest.mark.skipif(sys.version_info < (3, 10), reason="import-linter needs Python 3.10")
def test_the_project_keeps_its_architecture_contracts():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(lint), "--no-logo", "--no-cache"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
