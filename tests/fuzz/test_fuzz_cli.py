"""Generated hostile command lines through the real `zoo` process: exit 0, 1 or 2, one error line, no traceback.

Each case is a fresh `zoo` subprocess (about two seconds: it imports torch), so the ``ci`` profile runs a few
and ``long`` (`make fuzz`) a few hundred; every case reuses the session's tiny run and export.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import CLI_EXAMPLES
from fuzz_bounded import OUTCOMES
from hypothesis import given, settings
from hypothesis import strategies as st

ZOO = str(Path(sys.executable).parent / "zoo")
TIMEOUT_SECONDS = 180
# Lines a command may print before it fails: what it loaded or skipped, not a second error.
INFORMATIONAL = ("zoo: loaded ", "zoo: skipped ", "zoo: restored ", "zoo: removed ")

text_values = st.one_of(st.sampled_from(["-1", "0", "1e30", "null", "nan", "x\ny", "../../evil", "", "9" * 30,
                                         "[1,2]", "é", "\x1b[31mred"]),
                        st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                max_size=10))
set_keys = st.sampled_from(["z_dim", "h_dim", "epochs", "lr", "batch_size", "embedded_items", "val_split", "amp",
                            "latent_dim", "nope"])


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(kind, argv after `zoo`) with ``{scratch}``, ``{run}``, ``{export}`` and ``{checkpoint}`` placeholders."""
    kind = draw(st.sampled_from(["set", "seed", "resume", "z", "export-out", "onnx", "names"]))
    if kind == "set":
        assignment = f"{draw(set_keys)}={draw(text_values)}"
        return kind, ["train", "ae_mnist", "--set", "embedded_items=128", "--set", "h_dim=8", "--set", assignment,
                      "--max-steps", "1", "--device", "cpu", "--no-progress", "--out", "{scratch}/run"]
    if kind == "seed":
        return kind, ["train", "ae_mnist", "--seed", draw(text_values), "--set", "embedded_items=128",
                      "--max-steps", "1", "--device", "cpu", "--no-progress", "--out", "{scratch}/run"]
    if kind == "resume":
        return kind, ["train", "ae_mnist", "--resume", "{scratch}/damaged-run", "--max-steps", "6", "--device",
                      "cpu", "--no-progress"]
    if kind == "z":
        return kind, ["generate", "ae_mnist", "decode", "--z", "{scratch}/codes.npy", "--checkpoint", "{checkpoint}",
                      "--device", "cpu", "--out", "{scratch}/out"]
    if kind == "export-out":
        out = draw(st.sampled_from(["{scratch}/a-file", "/dev/null", "{scratch}/new/../existing",
                                    "{scratch}/only-manifest", "{scratch}/a-file/below", "{scratch}/fresh"]))
        return kind, ["export", "ae_mnist", "--run", "{run}", "--out", out, "--no-validate"]
    if kind == "onnx":
        return kind, ["generate", "ae_mnist", "decode", "--runtime", "onnxruntime", "--export",
                      "{scratch}/damaged-export", "--device", "cpu", "--out", "{scratch}/out"]
    return kind, [draw(st.sampled_from(["info", "train", "generate", "export"])), draw(text_values)]


def _prepare(kind: str, scratch: Path, run: Path, export: Path, damage: bytes) -> None:
    """The files a case's command reads, damaged with ``damage``."""
    if kind == "resume":
        copy = Path(shutil.copytree(run, scratch / "damaged-run"))
        config = copy / "config.json"
        text = config.read_bytes()
        cut = damage[0] % max(1, len(text)) if damage else len(text) // 2
        config.write_bytes(text[:cut] + damage[1:])
    elif kind == "z":
        (scratch / "codes.npy").write_bytes(damage)
    elif kind == "export-out":
        (scratch / "a-file").write_bytes(b"precious")
        (scratch / "existing").mkdir()
        (scratch / "existing" / "mine.txt").write_text("precious")
        (scratch / "only-manifest").mkdir()
        (scratch / "only-manifest" / "manifest.json").write_text("{}")
        (scratch / "only-manifest" / "notes.txt").write_text("precious")
    elif kind == "onnx":
        copy = Path(shutil.copytree(export, scratch / "damaged-export"))
        manifest = json.loads((copy / "manifest.json").read_text())
        target = damage[0] % 3 if damage else 0
        if target == 0:
            manifest["graphs"]["decoder"]["file"] = "../" + manifest["graphs"]["decoder"]["file"]
        elif target == 1:
            (copy / "decoder.onnx").write_bytes(damage)
        else:
            manifest["graphs"]["decoder"]["value_range"] = [None, None]
        (copy / "manifest.json").write_text(json.dumps(manifest))


def _fill(arg: str, places: dict[str, str]) -> str:
    for placeholder, value in places.items():
        arg = arg.replace(placeholder, value)
    return arg


PRECIOUS = ("a-file", "existing/mine.txt", "only-manifest/notes.txt")  # what _prepare puts there as the user's


def _precious_intact(kind: str, scratch: Path) -> bool:
    """The files a case put there as the user's own are all still there, unchanged (a deleted one fails)."""
    if kind != "export-out":  # only those cases put the user's files there
        return True
    return all((scratch / name).is_file() and (scratch / name).read_bytes() == b"precious" for name in PRECIOUS)


@settings(max_examples=CLI_EXAMPLES)
@given(case=command_lines(), damage=st.binary(min_size=0, max_size=64))
def test_hostile_command_lines(tiny_run: Path, tiny_export: Path, case: tuple[str, list[str]], damage: bytes) -> None:
    kind, argv = case
    checkpoint = tiny_run / "checkpoints" / "last.safetensors"
    scratch = Path(tempfile.mkdtemp(prefix="zoo-fuzz-cli-"))
    try:
        _prepare(kind, scratch, tiny_run, tiny_export, damage)
        places = {"{scratch}": str(scratch), "{run}": str(tiny_run), "{export}": str(tiny_export),
                  "{checkpoint}": str(checkpoint)}
        args = [_fill(a, places) for a in argv]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_CACHE_DIR": os.environ.get("ZOO_CACHE_DIR", "")}
        env = {k: v for k, v in env.items() if v != ""}
        try:
            done = subprocess.run([ZOO, *args], capture_output=True, text=True, errors="replace",
                                  timeout=TIMEOUT_SECONDS, env=env, cwd=scratch, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            OUTCOMES["cli_hang"] += 1
            raise AssertionError(f"zoo {args} still running after {TIMEOUT_SECONDS} s") from None
        OUTCOMES[f"cli_exit_{done.returncode}"] += 1
        report = f"zoo {args}\nexit {done.returncode}\nstderr:\n{done.stderr}"
        assert done.returncode in (0, 1, 2), report
        assert "Traceback" not in done.stderr, report
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(INFORMATIONAL)]
            assert len(errors) == 1 and errors[0].startswith("zoo: "), report
        assert _precious_intact(kind, scratch), f"{report}\nzoo changed or deleted a file it did not create"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_precious_check_fails_when_a_file_is_deleted_or_changed(tmp_path: Path) -> None:
    """The check above must see every way a user's file can be lost, or the fuzz case cannot fail."""
    _prepare("export-out", tmp_path, tmp_path, tmp_path, b"")
    assert _precious_intact("export-out", tmp_path)
    for name in PRECIOUS:
        path = tmp_path / name
        path.unlink()
        assert not _precious_intact("export-out", tmp_path), f"{name} deleted"
        path.write_bytes(b"changed!")
        assert not _precious_intact("export-out", tmp_path), f"{name} changed"
        path.write_bytes(b"precious")
    shutil.rmtree(tmp_path / "existing")  # the folder and its file gone at once
    assert not _precious_intact("export-out", tmp_path)
