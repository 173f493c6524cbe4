"""Alibaba PAI 2020 job + task table loader, on rows built to the published schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from traces import alibaba_pai2020 as pai
from traces.canonical import TraceError

JOBS = (  # job_name,inst_id,user,status,start_time,end_time (no header, as published)
    "4b3f04b66a525d2df903eb16,8cb3bec23d14dbde320b6613452e768cbbf35b8bd64ee28fcceb77d3c47d,"
    "58540f191766,Terminated,4550879.0,4551416.0\n"
    "4f057009a5d481acec67b088,aaaa,58540f191766,Terminated,1739100.0,1739200.0\n"
    "j3,bbbb,u2,Running,1739150.0,\n"
    "j4,cccc,u2,Waiting,1739160.0,\n"
    "j5,dddd,u3,Failed,1739170.0,1739300.0\n"
    "j6,eeee,u3,Terminated,1739180.0,1739190.0\n"
)
TASKS = (  # job_name,task_name,inst_num,status,start/end_time,plan_cpu/mem/gpu,gpu_type
    "4b3f04b66a525d2df903eb16,ps,1.0,Terminated,4550900.0,4551416.0,600.0,29.296875,,\n"
    "4b3f04b66a525d2df903eb16,worker,2.0,Terminated,4550910.0,4551400.0,400.0,10.0,50.0,T4\n"
    "4f057009a5d481acec67b088,tensorflow,1.0,Terminated,1739162.0,1739200.0,600.0,29.296875,"
    "50.0,MISC\n"
    "j3,worker,3.0,Running,1739155.0,,100.0,4.0,100.0,V100\n"
    "j5,worker,3.0,Failed,1739171.0,1739290.0,100.0,4.0,50.0,P100\n"
    "j5,evaluator,1.0,Failed,1739171.0,1739280.0,100.0,4.0,100.0,V100M32\n"
    "j6,worker,1.0,Terminated,1739181.0,1739190.0,200.0,8.0,0.0,\n"
    "orphan,worker,1.0,Failed,1739171.0,1739280.0,100.0,4.0,100.0,V100M32\n"
)


def _write(tmp_path: Path, jobs: str = JOBS, tasks: str = TASKS) -> Path:
    (tmp_path / "pai_job_table.csv").write_text(jobs)
    (tmp_path / "pai_task_table.csv").write_text(tasks)
    return tmp_path


def test_derivation(tmp_path):
    trace = pai.load(str(_write(tmp_path)), rebase=False)
    assert trace.report == {
        "dropped_no_tasks": 1,
        "dropped_orphan_tasks": 1,
        "repaired_missing_plan_values": 1,
        "dropped_unfinished": 1,
        "rounded_up_fractional_gpus": 1,
    }
    jobs = trace.jobs.set_index("job_id")
    assert list(jobs.index) == ["4b3f04b66a525d2df903eb16", "4f057009a5d481acec67b088", "j5", "j6"]
    first = jobs.loc["4b3f04b66a525d2df903eb16"]
    assert first["submit_time"] == 4550879.0
    assert first["duration"] == 4551416.0 - 4550900.0
    assert (first["num_gpus"], first["gpu_milli"]) == (1, 1000)  # 2 x 50 %
    assert first["num_cpus"] == 6.0 + 2 * 4.0 and first["memory_gb"] == 29.296875 + 20.0
    assert first["gpu_type"] == "" and first["assigned_gpu_type"] == "T4"
    assert first["trace_wait_time"] == 21.0
    half = jobs.loc["4f057009a5d481acec67b088"]
    assert (half["num_gpus"], half["gpu_milli"], half["num_cpus"]) == (1, 500, 6.0)
    j5 = jobs.loc["j5"]
    assert (j5["num_gpus"], j5["gpu_milli"]) == (3, 1000)  # 3 x 50 % + 100 % = 2.5 -> 3
    assert j5["assigned_gpu_type"] == "P100|V100M32" and j5["trace_status"] == "Failed"
    cpu = jobs.loc["j6"]
    assert (cpu["num_gpus"], cpu["gpu_milli"], cpu["num_cpus"]) == (0, 0, 2.0)


def test_options(tmp_path):
    folder = _write(tmp_path)
    censored = pai.load(
        str(folder / "pai_job_table.csv"), unfinished="censor", gpu_type_constraint=True
    )
    assert censored.report["kept_censored_at_trace_end"] == 1
    j3 = censored.jobs.set_index("job_id").loc["j3"]
    assert j3["duration"] == 4551416.0 - 1739155.0 and j3["gpu_type"] == "V100"
    assert (j3["num_gpus"], j3["gpu_milli"]) == (3, 1000)
    done = pai.load(str(folder), statuses=["Terminated"])
    assert sorted(done.jobs["job_id"]) == [
        "4b3f04b66a525d2df903eb16",
        "4f057009a5d481acec67b088",
        "j6",
    ]
    assert done.report["filtered_status"] == 3
    assert len(pai.load(str(folder), min_gpus=1, max_jobs=2).jobs) == 2


def test_header_rows_are_recognised(tmp_path):
    folder = _write(
        tmp_path,
        "job_name,inst_id,user,status,start_time,end_time\n" + JOBS,
        ",".join(pai.TASK_COLUMNS) + "\n" + TASKS,
    )
    assert len(pai.load(str(folder)).jobs) == 4


@pytest.mark.parametrize(
    ("table", "old", "new", "expected"),
    [
        (
            "job",
            "j5,dddd,u3,Failed,1739170.0",
            "j5,dddd,u3,Failed,soon",
            "pai_job_table.csv: row 5 (line 5), column start_time: cannot parse",
        ),
        (
            "task",
            "j5,worker,3.0,Failed,1739171.0,1739290.0,100.0,4.0,50.0",
            "j5,worker,3.0,Failed,1739171.0,1739290.0,100.0,4.0,-50.0",
            "pai_task_table.csv: row 5 (line 5), column plan_gpu: expected a value >= 0",
        ),
        (
            "task",
            "j6,worker,1.0,Terminated,1739181.0,1739190.0",
            "j6,worker,1.0,Terminated,1739191.0,1739190.0",
            "pai_job_table.csv: row 6 (line 6), column task end_time - start_time: negative",
        ),
        (
            "task",
            "j6,worker,1.0,Terminated,1739181.0,1739190.0,200.0,8.0,0.0,",
            "j6,worker,1.0,Terminated,1739181.0,1739190.0,200.0,8.0,0.0,,extra",
            "pai_task_table.csv: line 7: expected 10 fields, saw 11",
        ),
    ],
)
def test_broken_rows(tmp_path, table, old, new, expected):
    jobs = JOBS.replace(old, new) if table == "job" else JOBS
    tasks = TASKS.replace(old, new) if table == "task" else TASKS
    folder = _write(tmp_path, jobs, tasks)
    with pytest.raises(TraceError) as err:
        pai.load(str(folder))
    assert expected in str(err.value), str(err.value)


def test_missing_tables(tmp_path):
    (tmp_path / "pai_job_table.csv").write_text(JOBS)
    with pytest.raises(TraceError, match="pai_task_table.csv: file not found"):
        pai.load(str(tmp_path))
    (tmp_path / "pai_task_table.csv").write_text(TASKS)
    with pytest.raises(ValueError, match="unfinished must be one of"):
        pai.load(str(tmp_path), unfinished="keep")
