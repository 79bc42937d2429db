"""Exploration and labeling: random initial data, DVM label tasks, HDF5 shards, dask runner,
torch/numpy readers and the coverage report (DESIGN §4).

Data flow::

    initial.sample_initial(rng, ranges, x)  ->  label.LabelTask  ->  label.run_task  ->  shard_<id>.h5
                                                     runner.label_dataset (dask)      ->  manifest.json
    dataset.ShardDataset / dataset.load_dataset  <-  manifest.json + shards
    coverage.coverage_report                      ->  coverage.png

Modules import nothing heavy at package import; ``dataset`` imports torch lazily.
"""

from kinclose.data.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
