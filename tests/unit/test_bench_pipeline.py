"""argus bench pipeline's parameters, refused before anything runs (no stack needed)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("task_cpus", [0, 3])
def test_bench_pipeline_refuses_task_cpus_outside_the_executor(task_cpus):
    from argus.bench.pipeline import bench_pipeline

    with pytest.raises(ValueError, match="task cpus must be 1..2"):
        bench_pipeline(3, 2.0, 30, cores_per_executor=2, task_cpus=task_cpus)
