"""Labeling a chosen subset of a spec's tasks (used by the exploration–labeling–training loop)."""

import pytest

from kinclose.data.label import DatasetSpec
from kinclose.data.runner import ClusterSpec, LabelRunError, label_dataset
from kinclose.data.schema import read_manifest, verify_manifest

POOL = DatasetSpec(name="pool", n_tasks=5, seed=11, nx=16, nv=48, t_end=0.01, n_snapshots=2)


def test_label_subsets_accumulate_in_one_manifest(tmp_path):
    serial = ClusterSpec(kind="serial", threads=1)
    s1 = label_dataset(POOL, tmp_path, serial, progress=False, task_ids=[1, 3])
    assert s1["labeled"] == 2
    s2 = label_dataset(POOL, tmp_path, serial, progress=False, task_ids=[0, 3])
    assert s2["labeled"] == 1 and s2["skipped"] == 2  # 1 and 3 kept, 3 not relabeled
    ids = sorted(e["task_id"] for e in read_manifest(tmp_path)["shards"])
    assert ids == [0, 1, 3]
    assert len(verify_manifest(tmp_path, deep=True)) == 3


def test_unknown_task_ids_rejected(tmp_path):
    with pytest.raises(LabelRunError, match="outside the spec"):
        label_dataset(POOL, tmp_path, ClusterSpec(kind="serial"), progress=False, task_ids=[7])
