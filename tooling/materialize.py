"""Materialize every asset of every code location once, recorded in the Dagster instance.

``make demo`` uses it so the UI opens on a fully materialized platform. Assets are run in
dependency order, grouped by partitions definition: unpartitioned assets once, time-partitioned
assets for their latest partition, static/dynamic ones for each existing key.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import yaml


def workspace_modules(workspace: str | Path) -> list[tuple[str, str, str]]:
    """(location name, module, attribute) for each ``python_module`` entry of a workspace file."""
    doc = yaml.safe_load(Path(workspace).read_text(encoding="utf-8"))
    out = []
    for entry in doc.get("load_from", []):
        spec = entry.get("python_module")
        if spec is None:
            continue
        if isinstance(spec, str):
            spec = {"module_name": spec}
        module = spec["module_name"]
        out.append((spec.get("location_name", module), module, spec.get("attribute", "defs")))
    return out


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _partition_runs(
    pdef: dg.PartitionsDefinition | None,
    instance: dg.DagsterInstance,
    single_run: bool,
    latest_only: bool = False,
) -> list[tuple[str | None, dict[str, str]]]:
    """(partition key, extra tags) for each run: only the latest key when every asset says so
    (tag ``platform/materialize-all: latest-partition``: the latest partition already covers
    everything), a whole time range in one run when the assets' backfill policy allows it (what
    `dg launch --partition-range` does), else one run per key."""
    if pdef is None:
        return [(None, {})]
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition) and latest_only:
        last = pdef.get_last_partition_key()
        return [] if last is None else [(last, {})]
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition) and single_run:
        keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
        if not keys:
            return []
        return [(None, {RANGE_START: keys[0], RANGE_END: keys[-1]})]
    return [(key, {}) for key in _partition_keys(pdef, instance)]


def _partition_keys(
    pdef: dg.PartitionsDefinition | None, instance: dg.DagsterInstance
) -> list[str | None]:
    if pdef is None:
        return [None]
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        last = pdef.get_last_partition_key()
        return [last] if last else []
    if isinstance(pdef, dg.DynamicPartitionsDefinition):
        return list(instance.get_dynamic_partitions(pdef.name))
    return list(pdef.get_partition_keys(dynamic_partitions_store=instance))


def materialize_definitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    log: Callable[[str], None] = print,
    location: str = "",
) -> bool:
    """Materialize all executable assets of ``defs`` once. Returns False if any run failed."""
    graph = defs.resolve_asset_graph()
    executable = [
        k
        for k in graph.toposorted_asset_keys
        if graph.get(k).is_executable and graph.get(k).is_materializable
    ]
    groups: dict[object, list[dg.AssetKey]] = {}
    for key in executable:
        groups.setdefault(graph.get(key).partitions_def, []).append(key)
    order = sorted(groups.items(), key=lambda item: executable.index(item[1][0]))
    assets = [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition | dg.AssetSpec)]
    ok = True
    for pdef, keys in order:
        single_run = all(
            (policy := graph.get(k).backfill_policy) is not None
            and policy.max_partitions_per_run is None
            for k in keys
        )
        latest_only = all(
            graph.get(k).tags.get("platform/materialize-all") == "latest-partition" for k in keys
        )
        for partition, range_tags in _partition_runs(pdef, instance, single_run, latest_only):
            label = f"{location}: {len(keys)} asset(s)"
            if partition:
                label += f" partition {partition}"
            elif range_tags:
                label += (
                    f" partitions {range_tags[RANGE_START]}...{range_tags[RANGE_END]} in one run"
                )
            result = dg.materialize(
                [*assets, *(defs.asset_checks or [])],
                instance=instance,
                resources=defs.resources,
                selection=dg.AssetSelection.assets(*keys),
                partition_key=partition,
                raise_on_error=False,
                tags={"platform/trigger": "materialize-all", **range_tags},
                run_config=QUIET,
            )
            log(f"{'ok  ' if result.success else 'FAIL'} {label} (run {result.run_id[:8]})")
            ok &= result.success
    return ok


def materialize_workspace(
    workspace: str | Path,
    log: Callable[[str], None] = print,
    locations: Sequence[str] | None = None,
) -> bool:
    """Materialize the named locations (default all) one after the other, in this process."""
    instance = dg.DagsterInstance.get()
    ok = True
    for location, module, attribute in workspace_modules(workspace):
        if locations and location not in locations:
            continue
        defs = getattr(importlib.import_module(module), attribute)
        ok &= materialize_definitions(defs, instance, log, location)
    return ok


def materialize_workspace_in_parallel(
    workspace: str | Path, log: Callable[[str], None] = print
) -> bool:
    """One process per code location, all at once: the locations share nothing but the
    instance, and the consultation backup waits on Notion's rate limit while the others
    work. Each line of a location's output is prefixed with its name."""
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    for location, _module, _attribute in workspace_modules(workspace):
        platform = str(Path(sys.executable).parent / "platform")
        argv = [platform, "materialize-all", "--workspace"]
        argv += [str(workspace), "--location", location]
        procs.append(
            (
                location,
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
                ),
            )
        )

    def pump(location: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() and "Warning" not in line and "return fn(" not in line:
                log(f"[{location}] {line.rstrip()}")

    threads = [threading.Thread(target=pump, args=p, daemon=True) for p in procs]
    for t in threads:
        t.start()
    codes = [proc.wait() for _location, proc in procs]
    for t in threads:
        t.join(timeout=5)
    return all(code == 0 for code in codes)
