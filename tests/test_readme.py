"""The README's Python example runs and prints what it promises."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    pytest.importorskip("torch")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    clf = namespace["clf"]
    out = capsys.readouterr().out
    assert "scope sampled" in out and "Not a global certificate" in out
    assert clf.certificate_.converged
    assert clf.score(namespace["scaler"].transform(namespace["X_test"]), namespace["y_test"]) > 0.9


def _section_blocks(title: str) -> list[str]:
    """The ```python blocks of the README section ``## <title>`` (up to the next ``## ``)."""
    sections = re.split(r"\n## ", README.read_text())
    matching = [s for s in sections if s.startswith(title + "\n")]
    assert len(matching) == 1, f"README has no single section '## {title}'"
    return re.findall(r"```python\n(.*?)```", matching[0], flags=re.S)


def test_readme_threshold_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example saves a file in the working directory
    blocks = _section_blocks("Threshold networks")
    assert blocks, "the threshold section has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "True global"
    n_layers, n_units = map(int, out[1].split())
    assert n_layers == 3 and 1 <= n_units <= 29
    assert (tmp_path / "deep_threshold_net.npz").exists()


def test_readme_deep1d_example_runs(capsys):
    blocks = _section_blocks("Deep networks on 1-D data")
    assert blocks, "the 1-D section has no python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "0.75"  # the oracle: depth 3 min-norm interpolation
    assert out[1] == "[2. 6.] [False False]"
    assert out[2] == "global"
    assert out[3] == "1.5 1"
