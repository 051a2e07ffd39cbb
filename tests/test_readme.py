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
