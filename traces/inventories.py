"""Real cluster inventories shipped with the traces, as node lists and ready-made cluster specs.

The shipped CSV files (in ``traces/data/``) use the node-list format of
:meth:`simulator.core.cluster.ClusterSpec.from_node_list` (``node,num_gpus,gpu_type,num_cpus,
memory_gb``). They were produced from the upstream files by :func:`convert_openb_nodes` and
:func:`convert_pai_machines`; the functions are kept so that the conversion can be checked and
repeated. :func:`alibaba_openb` and :func:`alibaba_pai2020` build the clusters (used by
``configs/cluster/alibaba_openb.yaml`` and ``alibaba_pai2020.yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from traces.tables import check, numbers, read_csv_table, strings

if TYPE_CHECKING:
    from simulator.core.cluster import ClusterSpec

__all__ = [
    "NODE_LIST_HEADER",
    "OPENB_NODES",
    "PAI2020_NODES",
    "alibaba_openb",
    "alibaba_pai2020",
    "convert_openb_nodes",
    "convert_pai_machines",
]

_DATA = Path(__file__).resolve().parent / "data"
OPENB_NODES = _DATA / "alibaba_openb_nodes.csv"
"""1,213 GPU nodes (6,212 GPUs) of the Alibaba openb trace."""
PAI2020_NODES = _DATA / "alibaba_pai2020_nodes.csv"
"""1,897 machines (6,742 GPUs, 83 CPU-only machines) of the Alibaba PAI 2020 trace."""

NODE_LIST_HEADER = ("node", "num_gpus", "gpu_type", "num_cpus", "memory_gb")
"""Columns of the node lists written here."""

PAI_MACHINE_COLUMNS = ("machine", "gpu_type", "cap_cpu", "cap_mem", "cap_gpu")
"""Columns of ``pai_machine_spec.csv`` (the file itself has no header row)."""


def convert_openb_nodes(src: str | Path, dst: str | Path | None = None) -> pd.DataFrame:
    """Convert an openb node list (``sn,cpu_milli,memory_mib,gpu,model``) to node-list form.

    ``sn`` -> ``node``, ``gpu`` -> ``num_gpus``, ``model`` -> ``gpu_type`` (empty for CPU-only
    nodes), ``cpu_milli / 1000`` -> ``num_cpus``, ``memory_mib / 1024`` -> ``memory_gb``.

    Args:
        src: ``openb_node_list_gpu_node.csv`` (or ``..._all_node.csv``).
        dst: where to write the node-list CSV (``None`` = do not write).

    Returns:
        The node-list table.
    """
    table, lines = read_csv_table(
        src,
        required=("sn", "cpu_milli", "memory_mib", "gpu", "model"),
        dtype={"sn": str, "model": str},
        what="openb node list",
    )
    source = str(src)
    nodes = pd.DataFrame(
        {
            "node": strings(table["sn"], ""),
            "num_gpus": _count(table, "gpu", source, lines),
            "gpu_type": strings(table["model"], ""),
            "num_cpus": numbers(table, "cpu_milli", source, lines) / 1000.0,
            "memory_gb": numbers(table, "memory_mib", source, lines) / 1024.0,
        }
    )
    return _write(nodes, dst)


def convert_pai_machines(
    src: str | Path, dst: str | Path | None = None, *, header: bool = False
) -> pd.DataFrame:
    """Convert PAI ``pai_machine_spec.csv`` (``machine,gpu_type,cap_cpu,cap_mem,cap_gpu``).

    ``machine`` -> ``node``, ``cap_gpu`` -> ``num_gpus``, ``gpu_type`` -> ``gpu_type`` (``CPU``
    becomes empty), ``cap_cpu`` -> ``num_cpus`` (vCPU cores), ``cap_mem`` -> ``memory_gb`` (GB).

    Args:
        src: ``pai_machine_spec.csv``.
        dst: where to write the node-list CSV (``None`` = do not write).
        header: the file starts with a header row (the published file does not).

    Returns:
        The node-list table.
    """
    table, lines = read_csv_table(
        src,
        names=None if header else PAI_MACHINE_COLUMNS,
        required=PAI_MACHINE_COLUMNS,
        what="PAI machine spec",
        dtype={"machine": str, "gpu_type": str},
    )
    source = str(src)
    gpu_type = strings(table["gpu_type"], "")
    nodes = pd.DataFrame(
        {
            "node": strings(table["machine"], ""),
            "num_gpus": _count(table, "cap_gpu", source, lines),
            "gpu_type": gpu_type.where(gpu_type.str.upper() != "CPU", ""),
            "num_cpus": numbers(table, "cap_cpu", source, lines),
            "memory_gb": numbers(table, "cap_mem", source, lines),
        }
    )
    return _write(nodes, dst)


def _count(table: pd.DataFrame, col: str, source: str, lines: np.ndarray) -> np.ndarray:
    vals = numbers(table, col, source, lines, integer=True)
    check(vals >= 0, table[col], source, col, "expected a count >= 0", lines)
    return vals.astype(np.int64)


def _write(nodes: pd.DataFrame, dst: str | Path | None) -> pd.DataFrame:
    if dst is not None:
        nodes.to_csv(dst, index=False)
    return nodes


def alibaba_openb(nodes_per_rack: int = 32) -> ClusterSpec:
    """The 1,213 GPU nodes (6,212 GPUs) of the Alibaba openb cluster (ATC'23).

    Args:
        nodes_per_rack: consecutive nodes per rack / leaf switch (the trace gives no topology).

    Returns:
        The cluster spec, named ``alibaba_openb``.
    """
    from simulator.core.cluster import ClusterSpec

    return ClusterSpec.from_node_list(
        OPENB_NODES, nodes_per_rack=nodes_per_rack, name="alibaba_openb"
    )


def alibaba_pai2020(nodes_per_rack: int = 32) -> ClusterSpec:
    """The 1,897 machines of the Alibaba PAI 2020 cluster (NSDI'22), 83 of them CPU-only.

    Args:
        nodes_per_rack: consecutive nodes per rack / leaf switch (the trace gives no topology).

    Returns:
        The cluster spec, named ``alibaba_pai2020``.
    """
    from simulator.core.cluster import ClusterSpec

    return ClusterSpec.from_node_list(
        PAI2020_NODES, nodes_per_rack=nodes_per_rack, name="alibaba_pai2020"
    )
