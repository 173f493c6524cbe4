"""trace=kubernetes: workload manifests -> canonical trace (pod shapes, queues, errors)."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from simulator.k8s.manifests import parse_manifests
from traces.canonical import TraceError, validate
from traces.kubernetes import load, workloads_frame

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "kubernetes" / "workloads.yaml"


def job(name, gpus=8, parallelism=1, t="2025-06-01T00:00:00Z", duration="100", ns="ml", **kw):
    res = {
        "limits": {
            "nvidia.com/gpu": gpus,
            "cpu": kw.pop("cpu", "8"),
            "memory": kw.pop("mem", "64Gi"),
        }
    }
    meta = {"name": name, "namespace": ns, "creationTimestamp": t, "labels": kw.pop("labels", {})}
    meta["annotations"] = {"gpusim/duration": duration, **kw.pop("annotations", {})}
    if duration is None:
        del meta["annotations"]["gpusim/duration"]
    pod = {"containers": [{"name": "c", "resources": res}], **kw.pop("pod", {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "parallelism": parallelism,
            "template": {"metadata": kw.pop("tmeta", {}), "spec": pod},
        },
    }


def frame(*objs, **kw):
    text = "\n---\n".join(yaml.safe_dump(o) for o in objs)
    return workloads_frame(parse_manifests(text, "w.yaml"), "w.yaml", **kw)


def test_shipped_example():
    t = load(EXAMPLE)
    j = t.jobs.set_index("job_id")
    assert list(j.index) == [
        "team-a/llama-pretrain",
        "team-a/finetune-7b",
        "team-b/eval-sweep",
        "team-b/rl-rollout",
        "team-b/h200-bench",
        "team-a/notebook-debug",
    ]
    assert j.loc["team-a/llama-pretrain", ["pods", "gpus_per_pod", "num_gpus"]].tolist() == [
        4,
        8,
        32,
    ]
    assert j.loc["team-b/eval-sweep", ["pods", "gpus_per_pod"]].tolist() == [4, 4]
    assert j.loc["team-b/rl-rollout", ["pods", "min_member", "queue"]].tolist() == [
        3,
        3,
        "team-b-queue",
    ]
    assert j["submit_time"].tolist() == [0.0, 600.0, 900.0, 1200.0, 1800.0, 2400.0]
    assert j.loc["team-b/h200-bench", "gpu_type"] == "H200"
    assert j.loc["team-b/h200-bench", "topology_preferred"] == "topology.kubernetes.io/rack"
    assert j.loc["team-a/finetune-7b", "num_cpus"] == 96.0  # 2 pods x 48 requested
    assert t.report == {"unresolved_priority_class": 3}  # Kueue classes live in kueue.yaml
    validate(t.jobs, "again")  # the output is a valid canonical table


def test_pytorchjob_and_jobset_shapes_and_priorities():
    ptj = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {
            "name": "p",
            "creationTimestamp": "2025-06-01T00:00:10Z",
            "labels": {"kai.scheduler/queue": "team-a"},
            "annotations": {"gpusim/duration": "50.5"},
        },
        "spec": {
            "runPolicy": {"schedulingPolicy": {"minAvailable": 3}},
            "pytorchReplicaSpecs": {
                r: {
                    "replicas": n,
                    "template": {
                        "spec": {
                            "priorityClassName": "train",
                            "containers": [
                                {"name": "c", "resources": {"limits": {"nvidia.com/gpu": 8}}}
                            ],
                        }
                    },
                }
                for r, n in (("Master", 1), ("Worker", 3))
            },
        },
    }
    df, report = frame(job("a"), ptj)
    row = df.set_index("job_id").loc["default/p"]
    assert (row.pods, row.gpus_per_pod, row.num_gpus, row.min_member) == (4, 8, 32, 3)
    assert (row.priority, row.priority_class, row.queue) == (50, "train", "team-a")
    assert row.submit_time == 10.0 and row.duration == 50.5
    assert report == {"no_queue_label": 1}


def test_priority_class_objects_and_explicit_priority():
    pc = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "vip"},
        "value": 1000,
    }
    a = job("a", pod={"priorityClassName": "vip"})
    b = job("b", labels={"priorityClassName": "inference"})
    c = job("c", pod={"priorityClassName": "nope"})
    d = job("d", pod={"priorityClassName": "train", "priority": 7})
    df, report = frame(pc, a, b, c, d)
    assert df["priority"].tolist() == [1000, 125, 0, 7]
    assert df["kind"].tolist() == ["train", "infer", "train", "train"]
    assert report["unresolved_priority_class"] == 1
    df, _ = frame(job("x", pod={"priorityClassName": "train"}), priority_classes={"train": 3})
    assert df["priority"].tolist() == [3]


def test_effective_pod_request_uses_init_containers_and_limits():
    pod = {
        "containers": [
            {
                "name": "a",
                "resources": {
                    "requests": {"cpu": "500m", "memory": "1Gi"},
                    "limits": {"nvidia.com/gpu": 2},
                },
            },
            {"name": "b", "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}}},
        ],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}],
    }
    o = job("a")
    o["spec"]["template"]["spec"] = pod
    df, _ = frame(o)
    assert df.loc[0, ["gpus_per_pod", "cpus_per_pod", "memory_gb_per_pod"]].tolist() == [
        2,
        4.0,
        2.0,
    ]


def test_gpu_fraction_single_pod():
    o = job("f", gpus=0, tmeta={"annotations": {"gpu-fraction": "0.25"}})
    o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].pop("nvidia.com/gpu")
    df, _ = frame(o)
    assert df.loc[0, ["num_gpus", "gpu_milli", "pods"]].tolist() == [1, 250, 1]


def test_mixed_shapes_error_or_drop():
    js = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": "js",
            "creationTimestamp": "2025-06-01T00:00:00Z",
            "annotations": {"gpusim/duration": "1"},
        },
        "spec": {
            "replicatedJobs": [
                {
                    "name": n,
                    "replicas": 1,
                    "template": job(n, gpus=g)["spec"] and {"spec": job(n, gpus=g)["spec"]},
                }
                for n, g in (("driver", 0), ("workers", 8))
            ]
        },
    }
    with pytest.raises(
        Exception,
        match=r"JobSet js\), field spec.replicatedJobs\[1\].template.spec.template.spec: per-pod",
    ):
        frame(js)
    df, report = frame(js, job("ok"), mixed_pod_shapes="drop")
    assert list(df["job_id"]) == ["ml/ok"] and report == {
        "dropped_mixed_pod_shapes": 1,
        "no_queue_label": 1,
    }


BROKEN = [
    (
        job("a", duration=None),
        r"document 1 \(Job a\), field metadata.annotations\[gpusim/duration\]: required",
    ),
    (job("a", duration="soon"), r"gpusim/duration\]: expected seconds"),
    (job("a", duration="-5"), r"expected a duration > 0 s"),
    (job("a", t="yesterday"), r"field metadata.creationTimestamp: expected an RFC 3339"),
    (job("a", cpu="lots"), r"field spec.template.spec.containers\[0\].resources.limits\[cpu\]"),
    (job("a", gpus="1.5"), r"nvidia.com/gpu must be a whole number"),
    (job("a", parallelism=-1), r"field spec.parallelism: expected an integer >= 0"),
    (job("a", parallelism=0), r"has no pods"),
    (job("a", pod={"containers": []}), r"containers: expected a non-empty list"),
    (
        job("a", tmeta={"annotations": {"gpu-fraction": "1.5"}}),
        r"gpu-fraction\]: expected a fraction in \(0, 1\]",
    ),
    (
        job("a", tmeta={"annotations": {"gpu-fraction": "0.5"}}),
        r"must not also request nvidia.com/gpu",
    ),
    (
        job("a", parallelism=2, gpus=0, tmeta={"annotations": {"gpu-fraction": "0.5"}}),
        r"single-pod workloads only",
    ),
    (
        job("a", annotations={"gpu-memory": "4000"}),
        r"gpu-memory\]: KAI GPU-memory requests are not modelled",
    ),
]


@pytest.mark.parametrize(("obj", "message"), BROKEN)
def test_broken_manifests_name_document_object_and_field(obj, message):
    if "gpu-fraction" in str(obj) and "0.5" in str(obj) and obj["spec"]["parallelism"] == 2:
        obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].pop(
            "nvidia.com/gpu"
        )
    with pytest.raises(Exception, match=message):
        frame(obj)


def test_file_level_errors(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    )
    with pytest.raises(TraceError, match="no workloads"):
        load(p)
    p.write_text("kind: Job\n  bad: [\n")
    with pytest.raises(TraceError, match="invalid YAML"):
        load(p)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"scheduling.x-k8s.io/pod-group": "g"}},
        "spec": {},
    }
    p.write_text(yaml.safe_dump(pod))
    with pytest.raises(TraceError, match="no PodGroup default/g"):
        load(p)
    p.write_text(yaml.safe_dump(job("a")) + "---\n" + yaml.safe_dump(job("a")))
    with pytest.raises(TraceError, match="duplicate job_id 'ml/a'"):
        load(p)


def test_hydra_config_and_options():
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "config", overrides=["trace=kubernetes", f"trace.path={EXAMPLE}", "trace.max_jobs=2"]
        )
    t = instantiate(cfg.trace, _convert_="all")
    assert len(t.jobs) == 2 and t.report["truncated_max_jobs"] == 4


def test_canonical_pod_shape_columns():
    base = {
        "job_id": [1, 2, 3],
        "submit_time": [0, 0, 0],
        "duration": [1, 1, 1],
        "num_gpus": [32, 32, 8],
    }
    out = validate(pd.DataFrame(base), "t")
    assert out["pods"].tolist() == [0, 0, 0] and out["gpus_per_pod"].tolist() == [
        0,
        0,
        0,
    ]  # no shape
    out = validate(pd.DataFrame({**base, "pods": [4, None, 1]}), "t")
    assert out["gpus_per_pod"].tolist() == [8, 0, 8]
    out = validate(pd.DataFrame({**base, "gpus_per_pod": [8, 4, None]}), "t")
    assert out["pods"].tolist() == [4, 8, 0]
    for bad, msg in (
        ({"pods": [3, 4, 1]}, r"row 1, column pods: pods \* gpus_per_pod must equal num_gpus"),
        ({"pods": [4, 4, 1], "gpus_per_pod": [8, 4, 8]}, r"row 2, column pods"),
        ({"pods": [-1, 4, 1]}, r"expected a count >= 0"),
        (
            {"gpus_per_pod": [8, 0, 8]},
            r"row 2, column gpus_per_pod: gpus_per_pod = 0 needs the pod count",
        ),
        ({"pods": [4, 4, 1.5]}, r"row 3, column pods"),
    ):
        with pytest.raises(TraceError, match=msg):
            validate(pd.DataFrame({**base, **bad}), "t")
    shared = {
        "job_id": [1],
        "submit_time": [0],
        "duration": [1],
        "num_gpus": [1],
        "gpu_milli": [500],
    }
    assert validate(pd.DataFrame({**shared, "pods": [1]}), "t")["gpus_per_pod"].tolist() == [1]
