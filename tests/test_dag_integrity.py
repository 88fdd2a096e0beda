"""Every file in dags/ imports cleanly and defines well-formed DAGs (Astronomer's integrity test)."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dags_folder_is_not_empty():
    assert DAG_FILES


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in dagbag.import_errors.items())


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_file_defines_a_dag(dagbag, path):
    assert any(dag.fileloc == str(path) for dag in dagbag.dags.values()), f"{path.name} defines no DAG"


def test_dags_are_documented_and_tagged(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag_id.startswith("argus_"), dag_id
        assert dag.doc_md, f"{dag_id} has no doc_md"
        assert "argus" in dag.tags, f"{dag_id} is not tagged argus"
