"""A stand-in for SLURM's sbatch, srun and sacct on one machine, for testing the SLURM launcher.

`install(bin_dir)` writes the three commands into `bin_dir`; put it first on PATH. They do what
submitit needs from SLURM, on this machine: `sbatch` runs each task of the job array as a local
process with the SLURM_* variables a real allocation sets (several "nodes" are all localhost),
`srun` starts SLURM_NTASKS copies of its command with SLURM_PROCID / SLURM_LOCALID / SLURM_NODEID,
and `sacct` reports the states `sbatch` recorded. Nothing is queued or isolated: it is a test
double for the environment a job sees, not a scheduler.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

COMMANDS = ("sbatch", "srun", "sacct")


def install(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        path = bin_dir / command
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" {command} "$@"\n')
        path.chmod(0o755)


def _state_dir() -> Path:
    path = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake_slurm"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _options(lines: list[str]) -> dict[str, str]:
    options = {}
    for line in lines:
        match = re.match(r"#SBATCH\s+--([\w-]+)(?:[= ](.*))?$", line.strip())
        if match:
            options[match.group(1)] = (match.group(2) or "").strip()
    return options


def sbatch(args: list[str]) -> int:
    text = Path(args[-1]).read_text()  # submitit renames the file once sbatch has answered
    options = _options(text.splitlines())
    nodes = int(options.get("nodes", 1))
    per_node = int(options.get("ntasks-per-node", 1))
    array = options.get("array", "")
    indices = [None]
    if array:
        first, last = re.match(r"(\d+)-(\d+)", array).groups()
        indices = list(range(int(first), int(last) + 1))
    job_id = 100_000 + os.getpid() % 800_000
    for index in indices:
        env = {
            **os.environ,
            "SLURM_JOB_ID": str(job_id if index is None else job_id + 1 + index),
            "SLURM_JOB_NAME": options.get("job-name", "fake"),
            "SLURM_JOB_NUM_NODES": str(nodes),
            "SLURM_NNODES": str(nodes),
            "SLURM_JOB_NODELIST": ",".join(["localhost"] * nodes),
            "SLURM_NODELIST": ",".join(["localhost"] * nodes),
            "SLURM_NTASKS_PER_NODE": str(per_node),
            "SLURM_NTASKS": str(nodes * per_node),
        }
        name = str(job_id)
        if index is not None:
            env.update(SLURM_ARRAY_JOB_ID=str(job_id), SLURM_ARRAY_TASK_ID=str(index))
            name = f"{job_id}_{index}"
        state = _state_dir() / name
        state.write_text("RUNNING")
        script = _state_dir() / f"{name}.sh"
        script.write_text(text)
        # Detached, like a job on the cluster: the state file says when it is over.
        runner = (
            f'bash "{script}" > "{script}.log" 2>&1 '
            f'&& echo COMPLETED > "{state}" || echo FAILED > "{state}"'
        )
        subprocess.Popen(
            ["sh", "-c", runner],
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # sbatch's caller reads its output to the end
            stderr=subprocess.DEVNULL,
        )
    print(f"Submitted batch job {job_id}")
    return 0


def srun(args: list[str]) -> int:
    files = {}
    while args and args[0].startswith("--"):
        option = args.pop(0)
        if option in ("--output", "--error"):
            files[option] = args.pop(0)
    ntasks = int(os.environ["SLURM_NTASKS"])
    per_node = int(os.environ["SLURM_NTASKS_PER_NODE"])
    procs = []
    for rank in range(ntasks):
        names = {
            "%A": os.environ.get("SLURM_ARRAY_JOB_ID", ""),
            "%a": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
            "%j": os.environ["SLURM_JOB_ID"],
            "%t": str(rank),
        }

        def fill(pattern: str, names: dict[str, str] = names) -> str:
            for key, value in names.items():
                pattern = pattern.replace(key, value)
            # The job may start before submitit has moved its files into the job's folder.
            Path(pattern).parent.mkdir(parents=True, exist_ok=True)
            return pattern

        out = open(fill(files["--output"]), "a") if "--output" in files else None  # noqa: SIM115
        err = open(fill(files["--error"]), "a") if "--error" in files else out  # noqa: SIM115
        env = {
            **os.environ,
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank % per_node),
            "SLURM_NODEID": str(rank // per_node),
            "SLURM_STEP_ID": "0",
        }
        procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=err))
    return max(proc.wait() for proc in procs)


def sacct(args: list[str]) -> int:
    print("JobID|State|NodeList")
    wanted = {args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-j"}
    for state in sorted(_state_dir().iterdir()):
        if "." not in state.name and state.name.split("_")[0] in wanted:
            print(f"{state.name}|{state.read_text().strip()}|localhost")
    return 0


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    sys.exit({"sbatch": sbatch, "srun": srun, "sacct": sacct}[command](rest))
