"""Fixtures shared by several test modules."""

import pytest

from workflow_helpers import make_project, snakemake


@pytest.fixture(scope="session")
def local_project(tmp_path_factory):
    """The tiny demo project, run to the report once with local execution."""
    folder = tmp_path_factory.mktemp("workflow")
    make_project(folder)
    snakemake(folder, "--cores", "2")
    return folder
