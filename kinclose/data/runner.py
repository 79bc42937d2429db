"""Run label tasks on ``dask.distributed``: resume, retries, progress, manifest (DESIGN §4).

Each task (``kinclose.data.label.run_task``) writes its own shard into the dataset root; the
driver (this module) is the only writer of ``manifest.json``, rewritten atomically after every
completed shard, so a killed run leaves a manifest of complete shards only. A rerun

* skips a shard listed in the manifest whose file SHA-256 matches,
* accepts a shard that is not yet listed (killed between the shard's rename and the manifest
  update) only if it validates completely (layout, content checksum ``data_sha256``, the task
  spec in its ``config`` attribute equals the current one),
* deletes and relabels everything else (truncated, bit-flipped, partial, stale temp files).

Tasks are deterministic (seeded from the base seed and task id), so relabeling reproduces the
same data, and the manifest is keyed by task id: no shard is lost or listed twice.

Execution backends (``cluster`` settings)
-----------------------------------------
``kind: local`` (default)
    ``distributed.LocalCluster`` on loopback (127.0.0.1) with ``n_workers`` spawned worker
    processes, one task at a time per worker; each worker's task calls
    ``numba.set_num_threads(cores // n_workers)`` before solving.
``address: tcp://host:port``
    attach to a running scheduler (any Dask cluster). The dataset root must be on a file system
    that the workers share with the driver.
``kind: serial``
    in-process loop (tests, debugging, profiling).

SLURM / PBS with dask-jobqueue (not a dependency; install it on the cluster)::

    # on the login node, in a long-lived session (tmux):
    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(cores=8, processes=1, memory="16GB", walltime="02:00:00",
                           job_extra_directives=["--cpus-per-task=8"],
                           job_script_prologue=["export NUMBA_CACHE_DIR=$SCRATCH/numba_cache"])
    cluster.scale(jobs=16)
    print(cluster.scheduler_address)       # tcp://10.1.2.3:8786

    # then, pointing at a shared file system:
    kinclose-label dataset=large cluster.address=tcp://10.1.2.3:8786 cluster.threads=8 \\
        out_dir=/scratch/$USER/kinclose/large

A killed driver (or expired allocation) loses nothing: rerun the same command to resume.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from kinclose.conf import reject_unknown_keys
from kinclose.data.label import (
    DatasetSpec,
    LabelConfigError,
    LabelTask,
    make_tasks,
    run_task,
)
from kinclose.data.schema import (
    MANIFEST,
    ShardError,
    manifest_entry,
    read_attrs,
    read_manifest,
    sha256_file,
    shard_name,
    validate_shard,
    write_manifest,
)
from kinclose.io import atomic_write_json

log = logging.getLogger(__name__)

SPEC_FILE = "dataset_spec.json"
LOCK_FILE = ".kinclose-label.lock"


class LabelRunError(ValueError):
    """Bad cluster settings, or a dataset directory that cannot be used as asked (locked, holds
    another dataset, ...)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run.

    Attributes
    ----------
    kind : "local" (LocalCluster, default) or "serial" (in-process).
    address : scheduler address ``tcp://host:port``; when set, attach to it (kind must be "local").
    n_workers : LocalCluster worker processes; None = min(cores, pending tasks).
    threads : numba threads per task; None = cores // n_workers (local), all cores (serial),
        the worker's default (address).
    device : torch device of the Boltzmann labeler (e.g. ``"cuda"``: the GPU solver, N up to 96);
        None: the numba solver (N ≤ 48). Not part of the dataset: both give the same labels.
    """

    kind: str = "local"
    address: str | None = None
    n_workers: int | None = None
    threads: int | None = None
    device: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClusterSpec":
        reject_unknown_keys(d, cls.__dataclass_fields__, "cluster", LabelRunError)
        c = cls(**d)
        if c.kind not in ("local", "serial"):
            raise LabelRunError(f"cluster.kind={c.kind!r}: choose 'local' or 'serial' (or set cluster.address)")
        if c.address is not None and c.kind == "serial":
            raise LabelRunError("cluster.kind=serial conflicts with cluster.address; drop one of them")
        if c.address is not None and not str(c.address).startswith(("tcp://", "tls://", "inproc://", "ws://")):
            raise LabelRunError(f"cluster.address={c.address!r} must look like tcp://host:port")
        if c.device is not None and not (isinstance(c.device, str) and c.device):
            raise LabelRunError(f"cluster.device={c.device!r} must be null or a torch device name such as 'cuda'")
        for name in ("n_workers", "threads"):
            val = getattr(c, name)
            if val is not None and not (isinstance(val, int) and val >= 1):
                raise LabelRunError(f"cluster.{name}={val!r} must be null or an integer >= 1")
        return c


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- directory state
@contextmanager
def dataset_lock(root: Path) -> Iterator[None]:
    """One labeling driver per dataset directory; a lock left by a killed driver is taken over."""
    p = root / LOCK_FILE
    me = f"{socket.gethostname()} {os.getpid()}"
    while True:
        try:
            fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            break
        except FileExistsError:
            try:
                host, pid = p.read_text().split()
                alive = host == socket.gethostname() and _pid_alive(int(pid))
            except (OSError, ValueError):
                alive = False
            if alive:
                raise LabelRunError(f"{root} is being labeled by process {pid} on {host}; wait for it to finish "
                                    f"(or remove {p} if that process is gone)") from None
            log.warning("taking over the stale lock %s", p)
            p.unlink(missing_ok=True)
    try:
        yield
    finally:
        p.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_temp_files(root: Path) -> int:
    n = 0
    for p in root.glob(".shard_*.h5.*"):
        p.unlink(missing_ok=True)
        n += 1
    for p in root.glob(f".{MANIFEST}.*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def _check_spec(root: Path, spec: DatasetSpec, overwrite: bool) -> None:
    import json

    p = root / SPEC_FILE
    cur = asdict(spec)
    if p.exists():
        try:
            old = json.loads(p.read_text())
        except json.JSONDecodeError:
            old = None
        if isinstance(old, dict):
            # keys added to DatasetSpec later (e.g. ``boltzmann``) read as their defaults in older specs
            defaults = json.loads(json.dumps(asdict(DatasetSpec())))
            old = {**{k: defaults[k] for k in cur if k not in old and k in defaults}, **old}
        if old != json.loads(json.dumps(cur)):
            if not overwrite:
                raise LabelRunError(f"{root} holds a dataset made with different settings ({p}); choose another "
                                    "out_dir, or set overwrite=true to delete its shards and relabel")
            log.warning("overwrite=true: deleting the shards of %s", root)
            for f in root.glob("shard_*.h5"):
                f.unlink()
            (root / MANIFEST).unlink(missing_ok=True)
    atomic_write_json(p, cur)


def scan_existing(root: Path, tasks: list[LabelTask]) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Complete shards already present (task id → manifest entry) and the ids that were deleted
    because they were corrupted, truncated, partial or stale."""
    try:
        listed = {e["task_id"]: e for e in read_manifest(root)["shards"]}
    except ShardError as exc:
        if (root / MANIFEST).exists():
            log.warning("ignoring an unreadable manifest (%s); rescanning the shards", exc)
        listed = {}
    done: dict[int, dict[str, Any]] = {}
    bad: list[int] = []
    for task in tasks:
        p = root / shard_name(task.task_id)
        if not p.exists():
            continue
        entry = listed.get(task.task_id)
        if entry is not None and entry.get("file") == p.name:
            if sha256_file(p) == entry["sha256"]:
                done[task.task_id] = entry
                continue
            reason = "SHA-256 differs from the manifest"
        else:
            try:
                attrs = validate_shard(p, deep=True)
                if attrs["config"] != task.to_json():
                    raise ShardError("its task spec differs from the current one")
                done[task.task_id] = manifest_entry(p.name, task.task_id, attrs["samples"], sha256_file(p),
                                                    attrs["kn"], attrs["ic_kind"], attrs.get("data_sha256"))
                continue
            except ShardError as exc:
                reason = str(exc)
        log.warning("shard %s is not complete (%s): relabeling it", p.name, reason)
        p.unlink()
        bad.append(task.task_id)
    return done, bad


def _check_device(spec: DatasetSpec, cluster: ClusterSpec) -> None:
    """cluster.device applies to Boltzmann labels; N > 48 per direction needs it."""
    from kinclose.kinetic.boltzmann_dvm import max_n

    if cluster.device is not None and spec.collision != "boltzmann":
        raise LabelRunError(f"cluster.device={cluster.device!r} applies to dataset.collision=boltzmann only "
                            f"(this dataset is {spec.collision}, labeled on the CPU)")
    n = spec.boltzmann_options().n
    if spec.collision == "boltzmann" and n > max_n(cluster.device):
        raise LabelConfigError(f"dataset.boltzmann.n={n} > {max_n(None)} needs the GPU solver: "
                               "set cluster.device=cuda (and cluster.kind=serial)")


# ----------------------------------------------------------------------------- execution
def _serial(pending: list[LabelTask], root: Path, threads: int | None, retries: int,
            on_done: Callable[[dict[str, Any]], None], on_fail: Callable[[LabelTask, str, int], None],
            device: str | None = None) -> dict:
    threads = threads or cpu_count()
    for task in pending:
        for attempt in range(retries + 1):
            try:
                on_done(run_task(task, root, threads, device))
                break
            except Exception as exc:  # noqa: BLE001 - any task failure is retried, then reported
                msg = f"{type(exc).__name__}: {exc}"
                if attempt < retries:
                    log.warning("task %d failed (%s); retry %d/%d", task.task_id, msg, attempt + 1, retries)
                else:
                    on_fail(task, msg, attempt + 1)
    return {"kind": "serial", "n_workers": 1, "threads": threads}


def _dask(pending: list[LabelTask], root: Path, cluster: ClusterSpec, retries: int,
          on_done: Callable[[dict[str, Any]], None], on_fail: Callable[[LabelTask, str, int], None]) -> dict:
    import dask
    from distributed import Client, LocalCluster, as_completed

    cores = cpu_count()
    local = None
    # the in-process scheduler logs every connection at INFO; keep the driver's log readable
    dlog = logging.getLogger("distributed")
    old_level = dlog.level
    dlog.setLevel(max(logging.WARNING, old_level))
    t_start = time.perf_counter()
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn",
                          "distributed.worker.daemon": True}):
        if cluster.address:
            client = Client(cluster.address, timeout="30s")
            n_workers = len(client.scheduler_info().get("workers", {}))
            threads = cluster.threads
            info = {"kind": "address", "address": cluster.address, "n_workers": n_workers, "threads": threads}
        else:
            n_workers = cluster.n_workers or max(1, min(cores, len(pending)))
            threads = cluster.threads or max(1, cores // n_workers)
            local = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address=None, silence_logs=logging.WARNING)
            client = Client(local)
            info = {"kind": "local", "address": local.scheduler_address, "n_workers": n_workers, "threads": threads}
        info["startup_s"] = time.perf_counter() - t_start
        log.info("dask %s cluster at %s: %d workers, %s numba threads per task (ready in %.1f s)", info["kind"],
                 info["address"], n_workers, threads, info["startup_s"])
        try:
            futures = {}
            for task in pending:
                fut = client.submit(run_task, task, str(root), threads, cluster.device, pure=False,
                                    key=f"label-{task.task_id}-a0")
                futures[fut] = (task, 0)
            ac = as_completed(list(futures))
            for fut in ac:
                task, attempt = futures.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001
                    msg = f"{type(exc).__name__}: {exc}"
                    if attempt < retries:
                        log.warning("task %d failed (%s); retry %d/%d", task.task_id, msg, attempt + 1, retries)
                        nf = client.submit(run_task, task, str(root), threads, cluster.device, pure=False,
                                           key=f"label-{task.task_id}-a{attempt + 1}")
                        futures[nf] = (task, attempt + 1)
                        ac.add(nf)
                    else:
                        on_fail(task, msg, attempt + 1)
                    continue
                on_done(res)
        finally:
            client.close()
            if local is not None:
                local.close()
            dlog.setLevel(old_level)
    return info


def label_dataset(
    spec: DatasetSpec,
    out_dir: str | Path,
    cluster: ClusterSpec | None = None,
    retries: int = 1,
    overwrite: bool = False,
    progress: bool | None = None,
    log_every_s: float = 10.0,
    task_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Label every task of ``spec`` into ``out_dir`` (resuming), keep ``manifest.json`` current.

    ``task_ids`` restricts labeling to those tasks of the spec (the exploration–labeling–training
    loop labels the selected members of a candidate pool this way); complete shards of other
    tasks already in ``out_dir`` are kept.

    Returns
    -------
    summary dict: counts (n_tasks, complete, skipped, relabeled, labeled, failed), failures
    (task id, error, attempts), samples and cell·velocity updates labeled, wall time, rates
    (samples/s, updates/s), the cluster used and the dataset size on disk.
    """
    from tqdm.auto import tqdm

    cluster = cluster or ClusterSpec()
    if not (isinstance(retries, int) and retries >= 0):
        raise LabelRunError(f"retries={retries!r} must be an integer >= 0")
    _check_device(spec, cluster)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tasks = make_tasks(spec)
    if task_ids is not None:
        wanted = {int(i) for i in task_ids}
        unknown = sorted(i for i in wanted if not 0 <= i < len(tasks))
        if unknown:
            raise LabelRunError(f"task ids {unknown[:5]} are outside the spec's 0 … {len(tasks) - 1}")
        all_tasks = tasks
        tasks = [t for t in tasks if t.task_id in wanted]
    with dataset_lock(root):
        ntmp = _remove_temp_files(root)
        if ntmp:
            log.info("removed %d stale temporary files", ntmp)
        _check_spec(root, spec, overwrite)
        entries, bad = scan_existing(root, tasks if task_ids is None else all_tasks)
        extra = {"dataset": spec.name, "n_tasks": spec.n_tasks, "base_seed": spec.seed}
        write_manifest(root, list(entries.values()), extra)
        pending = [t for t in tasks if t.task_id not in entries]
        if task_ids is not None:
            bad = [i for i in bad if i in wanted]
        log.info("dataset %s in %s: %d tasks, %d complete, %d to label (%d relabeled)", spec.name, root, len(tasks),
                 len(entries), len(pending), len(bad))
        skipped = len(entries)
        failures: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []
        bar = tqdm(total=len(pending), disable=None if progress is None else not progress, desc="label", unit="shard")
        last = [time.perf_counter()]

        def on_done(res: dict[str, Any]) -> None:
            entries[res["task_id"]] = manifest_entry(res["file"], res["task_id"], res["samples"], res["sha256"],
                                                     res["kn"], res["ic_kind"], res.get("data_sha256"))
            write_manifest(root, list(entries.values()), extra)
            done.append(res)
            bar.update(1)
            now = time.perf_counter()
            if now - last[0] >= log_every_s or len(done) + len(failures) == len(pending):
                last[0] = now
                log.info("labeled %d/%d shards (%d failed), %.1f s", len(done), len(pending), len(failures), now - t0)

        def on_fail(task: LabelTask, msg: str, attempts: int) -> None:
            failures.append({"task_id": task.task_id, "error": msg, "attempts": attempts})
            bar.update(1)
            log.error("task %d failed after %d attempts: %s", task.task_id, attempts, msg)

        t_run = time.perf_counter()
        try:
            if not pending:
                info = {"kind": "none"}
            elif cluster.kind == "serial":
                info = _serial(pending, root, cluster.threads, retries, on_done, on_fail, cluster.device)
            else:
                info = _dask(pending, root, cluster, retries, on_done, on_fail)
        finally:
            bar.close()
        run_wall = time.perf_counter() - t_run
    samples = sum(r["samples"] for r in done)
    updates = sum(r["updates"] for r in done)
    size = sum((root / e["file"]).stat().st_size for e in entries.values())
    summary = {
        "dataset": spec.name, "out_dir": str(root), "n_tasks": len(tasks), "complete": len(entries),
        "skipped": skipped, "relabeled": len(bad), "labeled": len(done), "failed": len(failures),
        "failures": sorted(failures, key=lambda f: f["task_id"]),
        "grid_retries": sum(1 for r in done if r["grid_attempts"] > 1),
        "samples_total": sum(e["samples"] for e in entries.values()), "samples_labeled": samples,
        "updates_labeled": updates, "wall_s": time.perf_counter() - t0, "run_wall_s": run_wall,
        "samples_per_s": samples / run_wall if done else 0.0, "updates_per_s": updates / run_wall if done else 0.0,
        "cluster": info, "size_mb": size / 1e6, "cores": cpu_count(),
    }
    log.info("dataset %s: %d/%d shards complete, %d labeled, %d failed, %.1f s", spec.name, len(entries), len(tasks),
             len(done), len(failures), summary["wall_s"])
    return summary


def label_if_missing(root: str | Path, dataset: dict[str, Any], progress: bool | None = None) -> bool:
    """Label ``dataset`` (the keys of ``conf/dataset/*.yaml``) serially into ``root`` unless ``root`` already
    has a manifest; True when it labeled. For scripts that need a dataset and make it on first use."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return False
    spec = DatasetSpec.from_dict(dataset)
    log.info("no %s in %s: labeling %d tasks of dataset %s there first", MANIFEST, root, spec.n_tasks, spec.name)
    label_dataset(spec, root, ClusterSpec(kind="serial"), progress=progress)
    return True


def shard_attrs(root: str | Path) -> list[dict[str, Any]]:
    """Root attributes of every shard listed in the manifest (task order)."""
    root = Path(root)
    return [read_attrs(root / e["file"]) for e in read_manifest(root)["shards"]]
