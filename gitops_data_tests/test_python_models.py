"""A Python model that fails: one message (printed once) that starts at the file:line of the
user's code, with the user's frames (file:line in function: code), never an escaped one-liner."""

from __future__ import annotations

import sys

from gitops_data.cli import entry

MODEL = """import polars as pl


def inverse(v):
    if v == 0:
        raise ValueError(f"no inverse of {v}")
    return 100 // v


def ratio(nums: pl.LazyFrame) -> pl.LazyFrame:
    return nums.with_columns(
        pl.col("v").map_elements(inverse, return_dtype=pl.Int64).alias("r")
    )
"""

PROJECT = {
    "gitops_data.yaml": "name: t\n",
    "seeds/nums.csv": "id,v\n1,10\n2,0\n",
    "models/ratio.py": MODEL,
    "project.yml": """seeds:
  - name: nums
    path: seeds/nums.csv
models:
  - name: ratio
    python: models/ratio.py:ratio
""",
}


def _sync(repo, warehouse, tmp_path, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    monkeypatch.setattr(
        sys, "argv", ["gitops-data", "--repo", str(repo.path), "--warehouse", warehouse, "sync"]
    )
    code = entry()
    out, err = capsys.readouterr()
    return code, out, err


def test_an_error_while_the_frame_is_computed_points_at_the_users_line(
    make_repo, warehouse, tmp_path, monkeypatch, capsys
):
    repo = make_repo(PROJECT)
    code, out, err = _sync(repo, warehouse, tmp_path, monkeypatch, capsys)
    assert code == 4
    head = (
        "models/ratio.py:6: python model 'ratio' failed while its frame was computed: "
        "ValueError: no inverse of 0"
    )
    assert (out + err).count(head) == 1, out + err
    assert 'models/ratio.py:6 in inverse: raise ValueError(f"no inverse of {v}")' in err
    assert "\\n" not in err and "ValueError('" not in err  # not a repr of the exception
    assert " @ " not in err.split("error: ", 1)[1]  # the repo file, not the module's compiled name


def test_an_error_without_a_user_frame_points_at_the_models_function(
    make_repo, warehouse, tmp_path, monkeypatch, capsys
):
    files = dict(PROJECT)
    files["models/ratio.py"] = (
        "import polars as pl\n\n\ndef ratio(nums: pl.LazyFrame) -> pl.LazyFrame:\n"
        '    return nums.select(pl.col("missing"))\n'
    )
    repo = make_repo(files)
    code, out, err = _sync(repo, warehouse, tmp_path, monkeypatch, capsys)
    assert code == 4
    assert (out + err).count(
        "models/ratio.py:4: python model 'ratio' failed while its frame was computed"
    ) == 1
    assert "ColumnNotFoundError" in err
