"""Starting `zoo train` on several processes: torchrun's elastic agent, called as a library.

``zoo train MODEL --nproc N`` re-creates its own command line for each worker (:func:`worker_arguments`) and hands
it to :func:`launch`, which runs the code torchrun runs and turns a dead worker into one line. What a worker does
once started (the process group, DDP) is :mod:`zoo_core.distributed`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from zoo_core.distributed import RUN_STAMP_ENV, inside_worker
from zoo_core.errors import UsageError, ZooError

#: The `zoo train` options that steer the launcher, not the workers.
LAUNCH_OPTIONS = ("nproc", "nnodes", "rdzv_endpoint", "rdzv_timeout", "max_restarts")


def wants_launch(nproc: int, nnodes: int, rdzv_endpoint: str | None) -> bool:
    if nproc < 1 or nnodes < 1:
        raise UsageError("--nproc and --nnodes count processes and machines: 1 or more")
    requested = nproc > 1 or nnodes > 1 or rdzv_endpoint is not None
    if requested and inside_worker():
        raise UsageError("this process was started by torchrun already; drop --nproc/--nnodes/--rdzv-endpoint")
    if nnodes > 1 and rdzv_endpoint is None:
        raise UsageError(f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT, the same on every machine")
    return requested


def worker_arguments(command: Any, params: Mapping[str, Any], argument: str) -> list[str]:
    """The `zoo train` command line that re-creates ``params`` in a worker, without the launcher's own options."""
    import click

    args = [str(params[argument])]
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in LAUNCH_OPTIONS:
            continue
        value = params.get(param.name)
        flag = param.opts[0]
        if param.is_flag:
            if value:
                args.append(flag)
        elif param.multiple:
            for item in value or ():
                args += [flag, str(item)]
        elif value is not None:
            args += [flag, str(value)]
    return args


def _check_endpoint(endpoint: str) -> None:
    host, _, port = endpoint.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise UsageError(f"--rdzv-endpoint {endpoint!r}: expected HOST:PORT, e.g. node0.example.org:29400")


def launch(worker_args: Sequence[str], *, nproc: int, nnodes: int, rdzv_endpoint: str | None, rdzv_timeout: int,
           max_restarts: int, device: str, workers_cpp_log: str | None = None) -> None:
    """Start ``zoo train`` workers through torchrun's elastic agent and wait for them; raise one line on failure.

    ``workers_cpp_log`` is the TORCH_CPP_LOG_LEVEL the workers get (the launcher may have silenced its own).
    """
    gpus = torch.cuda.device_count()
    if (device == "cuda" or (device == "auto" and gpus)) and nproc > gpus:  # auto means CUDA wherever there is one
        raise UsageError(f"--nproc {nproc} with --device {device} needs {nproc} GPUs on this machine; it has {gpus}"
                         + ("; pass --device cpu to train on CPU processes" if gpus else ""))
    if device == "mps":
        raise UsageError("--nproc: training on several processes needs --device cpu or cuda, not mps")
    if rdzv_endpoint is not None:
        _check_endpoint(rdzv_endpoint)
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault(RUN_STAMP_ENV, _stamp())
    if workers_cpp_log is None:
        os.environ.pop("TORCH_CPP_LOG_LEVEL", None)
    else:
        os.environ["TORCH_CPP_LOG_LEVEL"] = workers_cpp_log
    if "OMP_NUM_THREADS" not in os.environ and "ZOO_THREADS" not in os.environ:
        # N workers on this machine share its cores; torch's default (one thread per core each) oversubscribes
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    log_dir = Path(tempfile.mkdtemp(prefix="zoo-train-logs-"))
    # rank 0 keeps the terminal (progress bar, one-line errors); the others write to files read back on failure
    logs = DefaultLogsSpecs(log_dir=str(log_dir), redirects={rank: Std.ERR for rank in range(1, nproc)})
    standalone = rdzv_endpoint is None
    config = LaunchConfig(
        min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc, logs_specs=logs,
        run_id=str(uuid.uuid4()) if standalone else "zoo-train", role="zoo",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0" if standalone else rdzv_endpoint,
        rdzv_configs={"join_timeout": rdzv_timeout, "read_timeout": rdzv_timeout, "is_host": True} if standalone
        else {"join_timeout": rdzv_timeout, "read_timeout": rdzv_timeout},
        max_restarts=max_restarts, monitor_interval=0.2, start_method="spawn")
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=ResourceWarning)  # the agent leaves its workers' log files open
    # the agent logs each failure over several lines; the one line below says it, and rank 0 says each restart
    for name in [*logging.root.manager.loggerDict, "torch.distributed.elastic"]:
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    keep_logs = False
    try:
        elastic_launch(config, sys.executable)("-m", "zoo_core", "train", *worker_args)
    except ChildFailedError as error:
        line, keep_logs = _failure_line(error, log_dir)
        failed = ZooError(line)
        exit_code = error.get_first_failure()[1].exitcode
        failed.exit_code = exit_code if exit_code > 0 else 128 - exit_code  # a signal's shell convention
        raise failed from None
    except SignalException as error:  # Ctrl-C or a scheduler's SIGTERM: the agent has stopped the workers
        stopped = ZooError(f"stopped by {signal_name(error.sigval)}; the processes saved a checkpoint if rank 0 said "
                           "so above, else the last one stands (continue with --resume)")
        stopped.exit_code = 128 + int(error.sigval)
        raise stopped from None
    except RendezvousError as error:
        cause: BaseException = error
        while cause.__cause__ is not None:  # "See inner exception for details": the innermost says what failed
            cause = cause.__cause__
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        raise ZooError(f"could not gather {nnodes} machine(s) at {rdzv_endpoint or 'localhost'} within "
                       f"{rdzv_timeout} s: {reason}") from None
    finally:
        if not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)


def signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _stamp() -> str:
    from datetime import datetime

    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _failure_line(error: Any, log_dir: Path) -> tuple[str, bool]:
    """One line naming the first rank that failed and why; and whether its log is worth keeping."""
    rank, failure = error.get_first_failure()
    where = ""
    if failure.exitcode < 0:
        cause = f"killed by {failure.signal_name()}"
    else:
        cause = f"exit code {failure.exitcode}"
        last, path = _last_line(log_dir, failure.local_rank)
        if last:
            cause += f": {last.removeprefix('zoo: ')}"
            where = f"; its output: {path}" if not last.startswith("zoo: ") else ""  # a traceback: keep it
    return f"training stopped: rank {rank} failed ({cause}); the other processes were stopped{where}", bool(where)


def _last_line(log_dir: Path, local_rank: int) -> tuple[str, Path | None]:
    """The last non-empty stderr line a redirected worker wrote in its latest attempt, and that file (rank 0 writes
    to the terminal: nothing)."""
    for path in sorted(log_dir.rglob("stderr.log"), reverse=True):  # attempt_N/LOCAL_RANK/stderr.log, latest first
        if path.parent.name != str(local_rank):
            continue
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1], path
    return "", None
