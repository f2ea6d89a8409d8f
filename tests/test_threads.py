"""CPU threads: --threads N, ZOO_THREADS, their ranges, and the passive OpenMP wait the zoo command sets."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from zoo_core import cli as zoo_cli
from zoo_core import threads
from zoo_core.errors import UsageError
from zoo_core.testing import invoke


@pytest.fixture(autouse=True)
def saved_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(threads.ENV, raising=False)
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert threads.requested_threads(None) is None
    monkeypatch.setenv(threads.ENV, " 3 ")
    assert threads.requested_threads(None) == 3
    assert threads.requested_threads(1) == 1


@pytest.mark.parametrize(("value", "message"), [
    ("0", "ZOO_THREADS must be a whole number of threads from 1 to 1024, got 0"),
    ("5000", "got 5000"),
    ("two", "got 'two'"),
    ("1.5", "got '1.5'"),
])
def test_a_bad_environment_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(UsageError, match=message):
        threads.requested_threads(None)


def test_apply_threads_sets_torch_and_leaves_the_default_alone() -> None:
    before = torch.get_num_threads()
    assert threads.apply_threads(None) == before == torch.get_num_threads()
    assert threads.apply_threads(1) == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("command", [["train", "anything"], ["export", "anything"]])
def test_threads_out_of_range_is_one_line_before_any_work(command: list[str]) -> None:
    result = invoke(*command, "--threads", "0")
    assert result.exit_code == 2
    assert result.stderr == "zoo: --threads must be a whole number of threads from 1 to 1024, got 0\n"


def test_zoo_threads_reaches_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    with_tasks = [m for m in json.loads(invoke("list", "--json").stdout) if m["tasks"]]
    if not with_tasks:
        pytest.skip("no installed model has a task")
    monkeypatch.setenv(threads.ENV, "-1")
    result = invoke("generate", with_tasks[0]["name"], with_tasks[0]["tasks"][0])
    assert result.exit_code == 2 and result.stderr.startswith("zoo: ZOO_THREADS must be a whole number")


def test_the_zoo_command_lets_idle_openmp_workers_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(threads.WAIT_POLICY, raising=False)
    monkeypatch.setattr(zoo_cli, "cli", lambda prog_name: None)
    zoo_cli.main()
    assert threads.os.environ[threads.WAIT_POLICY] == "PASSIVE"
    monkeypatch.setenv(threads.WAIT_POLICY, "ACTIVE")  # a user's own choice stays
    zoo_cli.main()
    assert threads.os.environ[threads.WAIT_POLICY] == "ACTIVE"
