"""Generation at scale: a task that maps images to images, run over inputs of any number in bounded memory, or
one that draws images, run for any number of them.

A task declares ``stream="map"`` or ``"map-any-size"`` (:class:`zoo_core.spec.TaskSpec`); `zoo generate` then
runs it through :func:`stream_task` instead of all at once. A task that declares ``stream="produce"`` draws
``n`` images from the seed; `zoo generate ... --per-image` runs it through :func:`produce_task`, which calls it
with ``n = batch`` block after block (block ``b`` seeded by :func:`block_seed`) and writes one PNG per image,
with the same journal, resuming, ``--nproc`` sharding and bounded memory as below.

The engine reads inputs lazily (folders recursively, globs, a text file of paths, WebDataset-style ``.tar``
shards), calls the task's own function on chunks of ``batch_size`` inputs on two compute threads (one decodes its
chunk inside the task while the other runs the graph, graph calls serialised by a lock), and encodes and writes
each output PNG on writer threads. At most ``queue_depth`` chunks are in flight, so peak memory is bounded by batch
size × queue depth, never by the number of inputs.

Resuming: every output is written atomically (:mod:`zoo_core.io`: a temporary file renamed into place), and
after each rename one line (input key → output name) is appended to ``OUT/.zoo-stream/journal-RANK.jsonl``,
tagged with a fingerprint of the model, runtime and task parameters. A rerun with the same arguments skips
an input when its journal line exists and its output is still a complete PNG (signature and IEND trailer),
so after a kill -9 at any point every output on disk decodes and only the outputs in flight at the kill
(fewer than one batch) are written again. ``overwrite`` redoes everything. Unreadable inputs are skipped,
counted and listed in ``OUT/.zoo-stream/failed.txt`` (or stop the run with ``strict``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo_core.errors import UsageError, ZooError
from zoo_core.images import IMAGE_SUFFIXES, is_image_file
from zoo_core.inputs import ImageInput

STATE_DIR = ".zoo-stream"
LIST_SUFFIXES = (".txt", ".lst")
TAR_SUFFIXES = (".tar",)
GLOB_CHARS = set("*?[")
MAX_TAR_MEMBER = 256 * 2**20  # a larger shard member is an unreadable input, not a reason to run out of memory
UNREADABLE = "cannot read image"  # how zoo_core.inputs words a decode failure (an input's fault, not the run's)
PNG_END = b"IEND\xaeB`\x82"


# -- inputs -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One input: ``key`` identifies it across runs (its path, or ``SHARD.tar::MEMBER``), ``stem`` names its output,
    ``source`` is a Path or (shard members) a callable returning the bytes."""

    key: str
    stem: str
    source: Any


def _walk(folder: Path, skipped: list[Path]) -> Iterator[Path]:
    """Image files under ``folder`` in the order ``sorted(folder.rglob("*"))`` gives, one directory at a time."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        raise ZooError(f"cannot list {folder}: {error.strerror or error}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir():
            yield from _walk(path, skipped)
        elif entry.is_file():
            if is_image_file(path):
                yield path
            else:
                skipped.append(path)


def _tar_items(shard: Path) -> Iterator[Item]:
    """The image members of a WebDataset-style shard in archive order, read sequentially (no seeks between)."""
    try:
        archive = tarfile.open(shard, "r:*")
    except (OSError, tarfile.TarError) as error:
        raise ZooError(f"cannot open shard {shard}: {error}") from None
    with archive:
        for member in archive:
            name = member.name
            if not member.isfile() or not is_image_file(Path(name)):
                continue
            data: bytes | None = None
            if member.size <= MAX_TAR_MEMBER:
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else None
            yield Item(f"{shard}::{name}", Path(name).stem, data if data is not None else b"")


def _expand(item: str | Path, skipped: list[Path], depth: int = 0) -> Iterator[Item]:
    text = str(item)
    path = Path(item)
    if path.is_dir():
        for file in _walk(path, skipped):
            yield Item(str(file), file.stem, file)
    elif path.is_file() and path.suffix.lower() in TAR_SUFFIXES:
        yield from _tar_items(path)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        if depth > 0:
            raise ZooError(f"{path}: a list of paths names another list; lists do not nest")
        yield from _list_items(path, skipped)
    elif path.is_file():
        yield Item(text, path.stem, path)
    elif GLOB_CHARS & set(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise ZooError(f"no file matches {text}")
        for match in matches:
            yield from _expand(match, skipped, depth + 1)
    else:
        raise ZooError(f"no such file or folder: {text}")


def _list_items(listing: Path, skipped: list[Path]) -> Iterator[Item]:
    """A text file of paths, one a line (relative ones from the file's folder); blank and # lines skipped."""
    try:
        handle = open(listing, encoding="utf-8")
    except OSError as error:
        raise ZooError(f"cannot read {listing}: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            path = Path(entry) if Path(entry).is_absolute() else listing.parent / entry
            if not path.exists() and not (GLOB_CHARS & set(entry)):
                raise ZooError(f"{listing} line {number}: no such file or folder {entry[:200]}")
            yield from _expand(path, skipped, depth=1)


class Inputs:
    """The inputs of a stream, enumerated lazily (twice at most: once to count, once to run)."""

    def __init__(self, items: Sequence[str | os.PathLike[str]]) -> None:
        if not items:
            raise UsageError("images: no inputs given")
        self.items = [str(i) for i in items]
        self.skipped: list[Path] = []

    def __iter__(self) -> Iterator[Item]:
        self.skipped = []
        for item in self.items:
            yield from _expand(item, self.skipped)

    def count(self) -> int:
        """How many inputs there are; shard members are counted from headers without keeping their bytes."""
        total = 0
        for item in self.items:
            total += sum(1 for _ in _count_expand(item))
        if total == 0:
            raise ZooError("no images found in " + ", ".join(self.items))
        return total


def _count_expand(item: str) -> Iterator[None]:
    path = Path(item)
    if path.is_file() and path.suffix.lower() in TAR_SUFFIXES:
        try:
            with tarfile.open(path, "r:*") as archive:
                for member in archive:
                    if member.isfile() and is_image_file(Path(member.name)):
                        yield None
        except (OSError, tarfile.TarError) as error:
            raise ZooError(f"cannot open shard {path}: {error}") from None
        return
    for _ in _expand(item, []):
        yield None


def unique_stems(items: Iterator[Item]) -> Iterator[tuple[int, Item, str]]:
    """(index, item, name) with ``name`` the item's stem, or ``STEM_INDEX`` where an earlier input had that stem:
    the numbering translate always used, so output names do not depend on how inputs are chunked."""
    seen: set[str] = set()
    for index, item in enumerate(items):
        name = item.stem if item.stem not in seen else f"{item.stem}_{index}"
        seen.add(item.stem)
        yield index, item, name


def as_image_input(item: Item, name: str) -> ImageInput:
    source = item.source
    if isinstance(source, bytes):
        if not source:
            return ImageInput(name, b"\0")  # an empty or oversized shard member: unreadable when decoded
    return ImageInput(name, source)


# -- resuming ---------------------------------------------------------------------------------------------------
def complete_png(path: Path) -> bool:
    """A file zoo finished writing: the PNG signature at the start and the IEND chunk at the end."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            handle.seek(0, os.SEEK_END)
            if handle.tell() < 20:
                return False
            handle.seek(-8, os.SEEK_END)
            tail = handle.read(8)
    except OSError:
        return False
    return head == b"\x89PNG\r\n\x1a\n" and tail == PNG_END


class Journal:
    """Which inputs have a complete output, per fingerprint; one appended line per written output."""

    def __init__(self, out: Path, fingerprint: str, rank: int) -> None:
        self.folder = out / STATE_DIR
        self.fingerprint = fingerprint
        self.path = self.folder / f"journal-{rank}.jsonl"
        self.lock = threading.Lock()
        self.handle: Any = None

    def done(self) -> dict[str, list[str]]:
        """key → output names, from every rank's journal (a rerun may use another --nproc); torn lines ignored."""
        found: dict[str, list[str]] = {}
        if not self.folder.is_dir():
            return found
        for journal in sorted(self.folder.glob("journal-*.jsonl")):
            with open(journal, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # the last line of a killed run may be cut short
                    if isinstance(record, dict) and record.get("f") == self.fingerprint \
                            and isinstance(record.get("k"), str) and isinstance(record.get("o"), str):
                        found.setdefault(record["k"], []).append(record["o"])
        return found

    def add(self, key: str, name: str) -> None:
        line = json.dumps({"f": self.fingerprint, "k": key, "o": name}) + "\n"
        with self.lock:
            if self.handle is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.handle = open(self.path, "a", encoding="utf-8")
            # flushed to the kernel: a kill -9 keeps it (fsync would only matter for a power cut)
            self.handle.write(line)
            self.handle.flush()

    def close(self) -> None:
        with self.lock:
            if self.handle is not None:
                self.handle.close()
                self.handle = None


def fingerprint(values: Mapping[str, Any]) -> str:
    """What makes two runs' outputs the same: the model, its weights and runtime, the task and its parameters."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- options, progress and a task's function on chunks --------------------------------------------------------------
@dataclass
class StreamOptions:
    """How :func:`stream_task` runs: ``shard`` is (rank, count) of ``--nproc`` (contiguous blocks of
    ``batch_size`` inputs dealt round-robin, so each chunk is the same whatever the process count)."""

    batch_size: int = 16
    queue_depth: int = 2
    writers: int = 8
    overwrite: bool = False
    strict: bool = False
    force: bool = False
    shard: tuple[int, int] = (0, 1)
    progress: bool = True
    #: called with (written, skipped, failed) after every chunk (the --nproc parent sums its workers' counts)
    report: Callable[[int, int, int], None] | None = None


@dataclass
class StreamReport:
    """What a stream did: outputs written, inputs skipped as already done, inputs that could not be read."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    replaced: int = 0
    seconds: float = 0.0
    summary_picture: Path | None = None

    def line(self) -> str:
        return f"wrote {self.written}, skipped {self.skipped}, failed {len(self.failed)}"


def wants_picture(ctx: Any) -> bool:
    """Whether a task should compose its summary picture: always, except on a stream's later chunks."""
    return bool(getattr(ctx, "stream_picture", True))


class LockedRunner:
    """A runner shared by the compute threads: one graph call at a time (IOBindings and CUDA streams are not
    thread-safe), while the other thread decodes or encodes."""

    def __init__(self, runner: Any) -> None:
        self.inner = runner
        self.lock = threading.Lock()
        self.runtime = runner.runtime
        self.config = runner.config
        self.description = runner.description

    def run(self, graph: str, *inputs: Any) -> tuple[Any, ...]:
        with self.lock:
            return self.inner.run(graph, *inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Progress:
    """images/s and an ETA on stderr: redrawn in place on a terminal, a line every 10 s elsewhere."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()

    def update(self, written: int, skipped: int, failed: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self.lock:
            if not final and now - self.last < (0.5 if self.tty else 10.0):
                return
            self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = written / elapsed
        left = self.total - written - skipped - failed
        eta = _clock(left / rate) if rate > 0 and left > 0 else "-"
        text = (f"zoo: {written + skipped + failed}/{self.total} images ({skipped} skipped, {failed} failed), "
                f"{rate:.1f} images/s, ETA {eta}")
        if self.tty:
            print("\r" + text, end="\n" if final else "", file=sys.stderr, flush=True)
        elif not final:
            print(text, file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def images_param(task: Any) -> str:
    from zoo_core.spec import Param

    for param in task.params:
        if isinstance(param, Param) and param.kind == "images":
            return param.name
    raise ZooError(f"task {task.name} streams but takes no images parameter")


def _placeholder() -> list[ImageInput]:
    return [ImageInput("placeholder", b"")]  # bind_params checks the other parameters without reading any image


@dataclass
class Chunk:
    """What a task made of one chunk: ``outputs`` (position in the chunk, the TaskResult, index in it) and
    ``failed`` (position, why) for inputs that could not be read."""

    outputs: list[tuple[int, Any, int]]
    failed: list[tuple[int, str]]


class TaskChunks:
    """A streaming task's own function, called chunk after chunk on a model loaded once: graph calls serialised
    between the compute threads, what the task computes :meth:`~zoo_core.tasks.TaskContext.once` shared."""

    kinds: tuple[str, ...] = ()

    def __init__(self, model: Any, task_name: str, params: Mapping[str, Any], seed: int = 0) -> None:
        from zoo_core.spec import load_object
        from zoo_core.tasks import check_seed

        self.model = model
        self.task = model.registered.spec.task(task_name)
        if self.task.stream not in self.kinds:
            raise UsageError(self.refusal())
        self.bound = self.bind(params)
        self.seed = check_seed(seed)
        self.runner = LockedRunner(model.runner)
        self.function = load_object(self.task.function)
        self.shared: dict[str, Any] = {}

    def refusal(self) -> str:
        return f"task {self.task.name} of {self.model.name} does not stream; it runs whole"

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from zoo_core.tasks import bind_params

        return bind_params(self.task, params)

    def fingerprint(self) -> str:
        """What makes two runs' outputs the same file for file (the journal's tag)."""
        return fingerprint({"model": self.model.name, "task": self.task.name, "params": self.bound,
                            "seed": self.seed, "runtime": self.model.runner.description})

    def context(self, picture: bool, seed: int | None = None) -> Any:
        from zoo_core.tasks import TaskContext

        model = self.model
        ctx = TaskContext(model=model.registered, runner=self.runner, recipe=model.recipe,
                          seed=self.seed if seed is None else seed, source=model.source,
                          data_provider=model._data_provider, shared=self.shared)
        ctx.stream_picture = picture  # type: ignore[attr-defined]
        return ctx


class ChunkRunner(TaskChunks):
    """A task that maps images to images (``stream="map"``), on chunks of ImageInputs: shared by the local engine,
    --nproc workers and Ray actors; an unreadable input fails alone."""

    kinds = ("map", "map-any-size")

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from zoo_core.tasks import bind_params

        self.key = images_param(self.task)
        return {k: v for k, v in bind_params(self.task, {**params, self.key: _placeholder()}).items() if k != self.key}

    def _call(self, inputs: list[ImageInput], picture: bool) -> Any:
        result = self.function(self.context(picture), **self.bound, **{self.key: inputs})
        if len(result.images) != len(inputs) or len(result.names) != len(inputs):
            raise ZooError(f"task {self.task.name} returned {len(result.images)} images for {len(inputs)} inputs; a "
                           "streaming task returns one named image per input")
        return result

    def __call__(self, inputs: list[ImageInput], picture: bool = False) -> Chunk:
        try:
            result = self._call(inputs, picture)
            return Chunk([(position, result, position) for position in range(len(inputs))], [])
        except ZooError as error:
            if not str(error).startswith(UNREADABLE):
                raise
        chunk = Chunk([], [])
        for position, one in enumerate(inputs):  # rerun one input at a time: only the unreadable ones fail
            try:
                result = self._call([one], picture and not chunk.outputs)
            except ZooError as error:
                if not str(error).startswith(UNREADABLE):
                    raise
                chunk.failed.append((position, str(error)))
                continue
            chunk.outputs.append((position, result, 0))
        return chunk


def block_seed(seed: int, block: int) -> int:
    """The seed block ``block`` of a produced stream draws with: ``seed`` itself for the first block (its images
    are those ``n=batch`` gives), then independent seeds derived from (seed, block) by NumPy's SeedSequence."""
    if block == 0:
        return seed
    return int(np.random.SeedSequence([seed, block]).generate_state(1)[0])


class Producer(TaskChunks):
    """A task that draws ``n`` images (``stream="produce"``), called with ``n = batch`` on block after block: block
    ``b`` draws with :func:`block_seed`, so image ``i`` depends on the seed, the batch and ``i`` only (not on
    how many are asked for, the process count or what a rerun skips)."""

    kinds = ("produce",)

    def __init__(self, model: Any, task_name: str, params: Mapping[str, Any], seed: int = 0,
                 batch: int = 16) -> None:
        self.batch = batch
        super().__init__(model, task_name, params, seed)

    def refusal(self) -> str:
        return (f"--per-image: task {self.task.name} of {self.model.name} does not draw its images from the seed "
                "(only tasks that produce images write one PNG each)")

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from zoo_core.spec import PRODUCE_COUNT
        from zoo_core.tasks import bind_params

        return bind_params(self.task, {**params, PRODUCE_COUNT: self.batch})

    def __call__(self, block: int, picture: bool = False) -> Any:
        result = self.function(self.context(picture, block_seed(self.seed, block)), **self.bound)
        if len(result.images) != self.batch:
            raise UsageError(f"--per-image: task {self.task.name} gave {len(result.images)} images for n={self.batch}"
                             "; drop the parameters that give it images instead of drawing them")
        return result


# -- the two kinds of work, and the engine under both ---------------------------------------------------------------
@dataclass
class Made:
    """What one chunk made: ``outputs`` (input key, file name, HWC uint8 image), the summary ``picture`` (file
    name, image) when asked for, and ``failed`` (input key, why)."""

    outputs: list[tuple[str, str, np.ndarray]]
    picture: tuple[str, np.ndarray] | None = None
    failed: list[tuple[str, str]] = field(default_factory=list)


class MapWork:
    """``stream="map"``: one output per input, named by the task."""

    def __init__(self, chunks: ChunkRunner, images: Sequence[str | os.PathLike[str]], batch: int) -> None:
        self.chunks, self.inputs, self.batch = chunks, Inputs(images), batch

    def fingerprint(self) -> str:
        return self.chunks.fingerprint()

    def count(self) -> int:
        return self.inputs.count()

    def units(self) -> Iterator[tuple[int, str, Any]]:
        for index, item, name in unique_stems(iter(self.inputs)):
            yield index, item.key, (item, name)

    def make(self, block: int, units: list[tuple[str, Any]], picture: bool) -> Made:
        chunk = self.chunks([as_image_input(item, name) for _, (item, name) in units], picture)
        made = Made([], failed=[(units[position][0], why) for position, why in chunk.failed])
        for position, result, index in chunk.outputs:
            if picture and made.picture is None and result.picture is not None:
                made.picture = (result.filename, result.picture)
            made.outputs.append((units[position][0], result.names[index], result.images[index]))
        return made

    def finish(self) -> None:
        skipped = self.inputs.skipped
        if skipped:
            print(f"zoo: skipped {len(skipped)} non-image file(s) (e.g. {skipped[0].name}); images end in "
                  f"{', '.join(IMAGE_SUFFIXES)}", file=sys.stderr)


#: the most images one produced stream writes (names keep at least 6 digits: sample_000042.png)
MAX_PRODUCED = 10**9


def check_count(total: Any) -> int:
    if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= MAX_PRODUCED:
        raise UsageError(f"n: a whole number from 1 to {MAX_PRODUCED:,} with --per-image, got {total!r}")
    return total


class ProduceWork:
    """``stream="produce"``: ``total`` images drawn block by block, written as ``TASK_INDEX.png``."""

    def __init__(self, producer: Producer, total: int) -> None:
        check_count(total)
        self.producer, self.total, self.batch = producer, total, producer.batch
        self.width = max(6, len(str(total - 1)))

    def fingerprint(self) -> str:
        return self.producer.fingerprint()

    def count(self) -> int:
        return self.total

    def units(self) -> Iterator[tuple[int, str, Any]]:
        for index in range(self.total):
            yield index, str(index), index

    def make(self, block: int, units: list[tuple[str, Any]], picture: bool) -> Made:
        result = self.producer(block, picture)
        start = block * self.batch
        name = self.producer.task.name
        made = Made([(key, f"{name}_{index:0{self.width}d}.png", result.images[index - start])
                     for key, index in units])
        if picture and result.picture is not None:
            made.picture = (result.filename, result.picture)
        return made

    def finish(self) -> None:
        pass


def prepare_out(out: str | os.PathLike[str]) -> Path:
    """The output folder, made; a file there is refused (one PNG per image needs a folder)."""
    target = Path(out)
    if target.suffix or (target.exists() and not target.is_dir()):
        raise UsageError(f"--out {target}: this task writes one PNG per image, so --out must be a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {target}: {error.strerror or error}") from None
    return target


def stream_task(model: Any, task_name: str, images: Sequence[str | os.PathLike[str]], params: Mapping[str, Any],
                out: str | os.PathLike[str], options: StreamOptions | None = None, seed: int = 0) -> StreamReport:
    """Run streaming task ``task_name`` of a loaded :class:`zoo_core.library.Model` over ``images`` (paths,
    folders, globs, lists, ``.tar`` shards), writing one PNG per input and the summary picture into ``out``."""
    options = options or StreamOptions()
    chunks = ChunkRunner(model, task_name, params, seed)
    if "batch_size" in chunks.bound:
        options.batch_size = int(chunks.bound["batch_size"])
    return _run_stream(MapWork(chunks, images, options.batch_size), prepare_out(out), options)


def produce_task(model: Any, task_name: str, count: int, params: Mapping[str, Any], out: str | os.PathLike[str],
                 options: StreamOptions | None = None, seed: int = 0) -> StreamReport:
    """Draw ``count`` images with task ``task_name`` (``stream="produce"``) of a loaded model, one PNG each, in
    blocks of ``options.batch_size``, plus the first block's summary picture, into ``out``; resumable like
    :func:`stream_task`."""
    options = options or StreamOptions()
    work = ProduceWork(Producer(model, task_name, params, seed, options.batch_size), count)
    return _run_stream(work, prepare_out(out), options)


def _run_stream(work: Any, target: Path, options: StreamOptions) -> StreamReport:
    """The engine under both kinds: blocks of ``batch_size`` units (this shard's only), what the journal says is
    done skipped, at most ``queue_depth`` chunks in flight on two compute threads, PNGs encoded and written on
    writer threads."""
    from zoo_core.results import check_output_file, encode_png

    batch = options.batch_size
    rank, count = options.shard
    journal = Journal(target, work.fingerprint(), rank)
    done = {} if options.overwrite else journal.done()
    total = work.count()
    shard_total = sum(min(batch, total - b) for b in range(0, total, batch) if (b // batch) % count == rank)
    report = StreamReport()
    progress = Progress(shard_total, options.progress)
    in_flight = threading.BoundedSemaphore(options.queue_depth)
    errors: list[BaseException] = []
    counts_lock = threading.Lock()
    started = time.monotonic()

    def counted(written: int = 0, skipped: int = 0, failed: str | None = None, replaced: int = 0) -> None:
        with counts_lock:
            report.written += written
            report.skipped += skipped
            report.replaced += replaced
            if failed is not None:
                report.failed.append(failed)
            snapshot = (report.written, report.skipped, len(report.failed))
        progress.update(*snapshot)
        if options.report is not None:
            options.report(*snapshot)

    def write_one(key: str, name: str, image: np.ndarray) -> None:
        path = target / name
        check_output_file(path, options.force)
        replaced = path.exists()
        _write_png(path, encode_png(image))
        journal.add(key, name)
        counted(written=1, replaced=int(replaced))

    def compute(block: int, chunk: list[tuple[str, Any]], picture: bool, writers: ThreadPoolExecutor) -> None:
        try:
            made = work.make(block, chunk, picture)
            for key, message in made.failed:
                if options.strict:
                    raise ZooError(f"{message} (--strict stops at the first unreadable input)")
                counted(failed=key)
            futures: list[Future[None]] = []
            if made.picture is not None:
                path = target / made.picture[0]
                check_output_file(path, options.force)
                futures.append(writers.submit(_write_png, path, encode_png(made.picture[1])))
                report.summary_picture = path
            futures += [writers.submit(write_one, key, name, image) for key, name, image in made.outputs]
            for future in futures:
                future.result()
        except BaseException as error:  # re-raised by the main thread
            errors.append(error)
        finally:
            in_flight.release()

    with ThreadPoolExecutor(2, thread_name_prefix="zoo-compute") as computers, \
            ThreadPoolExecutor(options.writers, thread_name_prefix="zoo-write") as writers:
        try:
            chunk: list[tuple[str, Any]] = []
            block = -1
            picture = True  # block 0 composes the summary picture, unless an earlier run did

            def submit() -> None:
                in_flight.acquire()
                computers.submit(compute, block, chunk, picture and block == 0, writers)

            for index, key, payload in work.units():
                if errors:
                    break
                unit_block = index // batch
                if unit_block != block:
                    if chunk:
                        submit()
                        chunk = []
                    block = unit_block
                if unit_block % count != rank:
                    continue
                outputs = done.get(key)
                if outputs and all(complete_png(target / o) for o in outputs):
                    counted(skipped=1)
                    picture = picture and index != 0
                    continue
                chunk.append((key, payload))
            if chunk and not errors:
                submit()
            for _ in range(options.queue_depth):
                in_flight.acquire()  # every chunk finished
        finally:
            journal.close()
    if errors:
        raise errors[0]
    work.finish()
    report.seconds = time.monotonic() - started
    progress.update(report.written, report.skipped, len(report.failed), final=True)
    if report.failed:
        from zoo_core import io as zio

        listing = target / STATE_DIR / (f"failed-{rank}.txt" if count > 1 else "failed.txt")
        zio.write_text(listing, "".join(f"{key}\n" for key in report.failed))
    return report


def _write_png(path: Path, data: bytes) -> None:
    """Atomic (a temporary file renamed into place) but not fsynced: a killed process never leaves a partial file,
    and an fsync per image (~7 ms here) would bound the stream by the disk; after a power cut a rerun's
    :func:`complete_png` check finds any file the OS lost and makes it again."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise ZooError(f"cannot write {path}: {error.strerror or error}") from None


def failed_summary(failed: Sequence[str], out: Path, shown: int = 5) -> str:
    """One line naming the first unreadable inputs and where the whole list is."""
    names = ", ".join(Path(key.split("::")[-1]).name for key in failed[:shown])
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"zoo: could not read {names}{more} (listed in {out / STATE_DIR})"


__all__ = ["Inputs", "Item", "Journal", "StreamOptions", "StreamReport", "block_seed", "complete_png",
           "produce_task", "stream_task", "unique_stems", "wants_picture"]


# -- the shells: `zoo generate` on one process, on --nproc processes, on Ray ------------------------------------
def generate_stream(model_name: str, task_name: str, runtime: str, source: Any, data: Any, values: dict[str, Any],
                    params: Mapping[str, Any]) -> StreamReport:
    """`zoo generate MODEL TASK INPUTS... --out DIR` for a task that maps images, or `zoo generate MODEL TASK --n N
    --per-image --out DIR` for one that produces them; prints progress and the end line."""
    from zoo_core.registry import registered_model
    from zoo_core.spec import PRODUCE_COUNT

    task = registered_model(model_name).spec.task(task_name)
    work: list[Any] | int
    if task.stream == "produce":
        work = check_count(values.pop(PRODUCE_COUNT, None) or task_default(task, PRODUCE_COUNT))
    else:
        key = images_param(task)
        work = values.pop(key, None)
        if not work:
            raise UsageError(f"task {task_name} needs {key}: image files, folders, globs, lists or .tar shards")
    out = Path(params["out"] or Path("generated") / model_name)
    # onnxruntime's idle threads sleep: spinning took the cores the decode and write threads need (about 1.5x here)
    os.environ.setdefault("ZOO_ORT_SPIN", "0")
    options = StreamOptions(overwrite=params["overwrite"], strict=params["strict"], force=params["force"])
    seed = int(params["seed"])
    if params["engine"] == "ray":
        if isinstance(work, int):
            raise UsageError(f"--engine ray runs tasks that map images; {task_name} draws its images (use --nproc)")
        from zoo_core.ray_data import stream_on_ray

        report, description = stream_on_ray(model_name, task_name, runtime, source, work, values, out, options,
                                             seed=seed, address=params["address"])
    elif params["address"]:
        raise UsageError("--address names a Ray cluster: use it with --engine ray")
    elif params["nproc"] > 1:
        report, description = stream_processes(model_name, task_name, runtime, source, data, work, values, out,
                                               options, seed=seed, nproc=params["nproc"], threads=params["threads"])
    else:
        from zoo_core.library import open_model
        from zoo_core.threads import apply_threads

        apply_threads(params["threads"])
        model = open_model(model_name, runtime, source, data)
        report = run_stream(model, task_name, work, values, out, options, seed=seed)
        description = model.runner.description
    rate = report.written / report.seconds if report.seconds > 0 else 0.0
    print(f"zoo: {report.line()} into {out} ({rate:.1f} images/s; {description})", file=sys.stderr)
    if report.failed:
        print(failed_summary(report.failed, out), file=sys.stderr)
    return report


def task_default(task: Any, name: str) -> Any:
    return next(p.default for p in task.params if getattr(p, "name", None) == name)


def run_stream(model: Any, task_name: str, work: Sequence[Any] | int, values: Mapping[str, Any],
               out: str | os.PathLike[str], options: StreamOptions, seed: int) -> StreamReport:
    """:func:`produce_task` for a count of images, :func:`stream_task` for inputs."""
    if isinstance(work, int):
        return produce_task(model, task_name, work, values, out, options, seed=seed)
    return stream_task(model, task_name, work, values, out, options, seed=seed)


def _worker(rank: int, nproc: int, model_name: str, task_name: str, runtime: str, source: Any, data: Any,
            work: list[str] | int, values: dict[str, Any], out: str, options: StreamOptions, seed: int,
            threads: int, counts: Any, results: Any) -> None:
    """One of --nproc processes: its own model, the inputs of its shard, counts shared with the parent."""
    os.environ.setdefault("ZOO_ORT_THREADS", str(threads))
    if source.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(rank % torch.cuda.device_count())  # before CUDA starts
    try:
        from zoo_core.library import open_model
        from zoo_core.threads import apply_threads

        apply_threads(threads)
        model = open_model(model_name, runtime, source, data, quiet=rank > 0)

        def report(written: int, skipped: int, failed: int) -> None:
            counts[3 * rank:3 * rank + 3] = [written, skipped, failed]

        options.shard, options.progress, options.report = (rank, nproc), False, report
        done = run_stream(model, task_name, work, values, out, options, seed=seed)
        results.put((rank, None, done.written, done.skipped, done.failed, done.seconds, model.runner.description))
    except (ZooError, UsageError) as error:
        results.put((rank, str(error), 0, 0, [], 0.0, ""))
    except BaseException as error:
        results.put((rank, f"{type(error).__name__}: {error}", 0, 0, [], 0.0, ""))


def stream_processes(model_name: str, task_name: str, runtime: str, source: Any, data: Any, images: list[Any] | int,
                     values: dict[str, Any], out: Path, options: StreamOptions, seed: int, nproc: int,
                     threads: int | None = None) -> tuple[StreamReport, str]:
    """The stream on ``nproc`` spawned processes, each loading the model once and taking every nproc-th block of
    ``batch_size`` inputs (or of images to produce, ``images`` a count); outputs are the files one process
    writes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads and sessions
    per_process = threads or max(1, (os.cpu_count() or 1) // nproc)
    counts = context.Array("q", 3 * nproc, lock=False)
    results = context.Queue()
    paths: list[str] | int = images if isinstance(images, int) else [str(i) for i in images]
    total = paths if isinstance(paths, int) else Inputs(paths).count()
    workers = [context.Process(target=_worker, args=(rank, nproc, model_name, task_name, runtime, source, data,
                                                     paths, values, str(out), options, seed, per_process, counts,
                                                     results), daemon=True) for rank in range(nproc)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    progress = Progress(total, options.progress)
    answers: list[Any] = []
    try:
        while len(answers) < nproc:
            try:
                answers.append(results.get(timeout=0.5))
            except Exception:  # queue.Empty: report progress, and notice a worker that died without answering
                if any(not w.is_alive() and w.exitcode not in (0, None) for w in workers) and results.empty():
                    dead = [r for r, w in enumerate(workers) if not w.is_alive() and w.exitcode not in (0, None)]
                    raise ZooError(f"worker process {dead[0]} of {nproc} died (exit code "
                                   f"{workers[dead[0]].exitcode}); rerun to resume") from None
            sums = [sum(counts[i::3]) for i in range(3)]
            progress.update(*sums)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    errors = [answer for answer in answers if answer[1] is not None]
    if errors:
        raise ZooError(sorted(errors)[0][1])
    report = StreamReport(seconds=time.monotonic() - started)
    for _, _, written, skipped, failed, _, _ in sorted(answers):
        report.written += written
        report.skipped += skipped
        report.failed.extend(failed)
    progress.update(report.written, report.skipped, len(report.failed), final=True)
    description = sorted(answers)[0][6]
    return report, f"{nproc} processes of {per_process} thread(s): {description}"
