"""Published weights: declared by name in a model's card, or named by URL, path or Hugging Face repository.

A model's card lists :class:`Weights` (torch-free, like torchvision's ``Weights`` enums): where the file is
(a URL, or a file shipped inside the plugin's distribution), its sha256 and size, how it was trained and what
it measured. :func:`resolve_weights` turns whatever ``--weights`` names into a local zoo checkpoint file:

- ``NAME``: a name the card declares (``default``: its default weights);
- ``URL#sha256=HEX``: a zoo checkpoint over HTTP(S), hash required (pip's convention);
- ``PATH``: a zoo checkpoint ``.safetensors``, or a Hub-layout folder (``model.safetensors`` + ``config.json``);
- ``hf://org/repo[@rev]``: a Hub model repository written by ``zoo card`` (through huggingface_hub).

Downloads land in ``$ZOO_CACHE_DIR/weights/<sha256>.safetensors`` (see :mod:`zoo_core.download`); every file is
hash-checked and its metadata validated as a checkpoint's before anything is built from it. Importing this module
imports neither torch nor the network stack: cards are built from it on `zoo list`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_core.errors import UsageError, ZooError

if TYPE_CHECKING:
    from zoo_core.plugins import RegisteredModel
    from zoo_core.spec import ModelSpec

Log = Callable[[str], None] | None

SHA256 = re.compile(r"^[0-9a-f]{64}$")
HUB_PREFIX = "hf://"
# A Hub repository id: namespace/name of letters, digits, "-", "_" and ".", as the Hub accepts them.
HUB_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HUB_WEIGHTS = "model.safetensors"  # the Hub's name for a repository's weights file
HUB_CONFIG = "config.json"
DEFAULT_NAME = "default"  # --weights default: the weights the card marks default
OFFLINE_ENV = "ZOO_OFFLINE"


@dataclass(frozen=True)
class Weights:
    """Trained weights a model's card declares, loadable with ``--weights NAME``.

    ``file`` is ``"package:relative/path"`` for weights shipped inside a distribution (package data, read with
    importlib.resources); ``urls`` are tried in order where no shipped file is found. ``sha256`` and ``size``
    (bytes) are those of the zoo checkpoint file. ``metrics`` are figures measured on held-out data by
    ``measured_by`` (a command anyone can rerun); ``preset``, ``training`` and ``data`` say how they were made.
    """

    name: str
    summary: str
    sha256: str
    size: int
    preset: str
    data: str
    training: str = ""
    urls: tuple[str, ...] = ()
    file: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    measured_by: str = ""
    license: str = ""
    default: bool = False

    def __post_init__(self) -> None:
        from zoo_core.spec import check_name

        check_name("weights", self.name)
        if self.name == DEFAULT_NAME:
            raise ValueError(f"weights cannot be named {DEFAULT_NAME!r}: --weights {DEFAULT_NAME} means the default")
        if not isinstance(self.sha256, str) or not SHA256.match(self.sha256):
            raise ValueError(f"weights {self.name!r}: sha256 must be 64 lowercase hex digits")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size <= 0:
            raise ValueError(f"weights {self.name!r}: size must be a positive number of bytes")
        if not self.urls and not self.file:
            raise ValueError(f"weights {self.name!r}: give urls or a shipped file ('package:path')")
        for url in self.urls:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"weights {self.name!r}: url {url[:80]!r} is not http(s)")
        if self.file and (":" not in self.file or ".." in self.file.split(":", 1)[1].split("/")):
            raise ValueError(f"weights {self.name!r}: file must be 'package:relative/path', got {self.file!r}")
        for key, value in self.metrics.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"weights {self.name!r}: metric {key!r} must be a number")

    def as_json(self, model_license: str = "") -> dict[str, Any]:
        """The declaration as `zoo info --json` shows it."""
        return {"name": self.name, "summary": self.summary, "default": self.default, "preset": self.preset,
                "training": self.training, "data": self.data, "metrics": dict(self.metrics),
                "measured_by": self.measured_by, "license": self.license or model_license, "sha256": self.sha256,
                "size": self.size, "urls": list(self.urls), "file": self.file}


def check_declarations(spec: ModelSpec) -> None:
    """What ModelSpec checks of its weights: unique names, known presets, at most one default."""
    names = [w.name for w in spec.weights]
    if len(set(names)) != len(names):
        raise ValueError(f"model {spec.name!r}: duplicate weights names in {names}")
    presets = {p.name for p in spec.presets}
    for weights in spec.weights:
        if not isinstance(weights, Weights):
            raise ValueError(f"model {spec.name!r}: weights must be Weights, got {type(weights).__name__}")
        if weights.preset not in presets:
            raise ValueError(f"model {spec.name!r}: weights {weights.name!r} name preset {weights.preset!r}, "
                             "which is not a preset")
    if sum(w.default for w in spec.weights) > 1:
        raise ValueError(f"model {spec.name!r}: more than one weights marked default")


def declared(spec: ModelSpec, name: str | None) -> Weights:
    """The weights ``name`` of the card (None or ``default``: the default, else the only ones)."""
    weights = tuple(spec.weights)
    names = ", ".join(w.name for w in weights)
    if not weights:
        raise UsageError(f"{spec.name} declares no weights; train it (zoo train {spec.name}) or pass --weights "
                         "URL#sha256=HEX, a file or hf://org/repo")
    if name is None or name == DEFAULT_NAME:
        chosen = [w for w in weights if w.default] or (list(weights) if len(weights) == 1 else [])
        if not chosen:
            raise UsageError(f"{spec.name} marks no weights default; name one of: {names}")
        return chosen[0]
    for item in weights:
        if item.name == name:
            return item
    raise UsageError(f"{spec.name} has no weights {name!r}; its weights: {names}")


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def weights_cache() -> Path:
    """Where downloaded weights live: ``<zoo cache>/weights``, one ``<sha256>.safetensors`` each."""
    from zoo_core.data.procedural import cache_root

    return cache_root() / "weights"


def cached_path(sha256: str) -> Path:
    return weights_cache() / f"{sha256}.safetensors"


def split_url(reference: str) -> tuple[str, str]:
    """``(url, sha256)`` of ``URL#sha256=HEX``; a URL without its hash is refused in one line."""
    url, _, fragment = reference.partition("#")
    key, _, digest = fragment.partition("=")
    if key != "sha256" or not SHA256.match(digest.lower()):
        raise UsageError(f"--weights {url}: a URL must carry its hash as URL#sha256=HEX (64 hex digits); zoo loads "
                         "no download it cannot check")
    return url, digest.lower()


def split_hub(reference: str) -> tuple[str, str | None]:
    """``(repo_id, revision)`` of ``hf://org/repo[@rev]``."""
    body = reference[len(HUB_PREFIX):]
    repo, _, revision = body.partition("@")
    if not HUB_REPO.match(repo) or ".." in repo or (revision == "" and "@" in body):
        raise UsageError(f"--weights {reference}: a Hub repository is hf://ORG/NAME or hf://ORG/NAME@REVISION")
    return repo, revision or None


def weights_table(card: Mapping[str, Any], table: Callable[..., Any], add_row: Callable[..., None]) -> list[Any]:
    """`zoo info`'s weights table (none where the card declares no weights); ``table``/``add_row`` are the CLI's."""
    if not card.get("weights"):
        return []
    rows = table("weights (--weights NAME, zoo pull MODEL:NAME)", ["weights", "trained", "measured", "file"])
    for w in card["weights"]:
        figures = ", ".join(f"{k} {v:.4g}" for k, v in w["metrics"].items())
        where = "shipped" if w["file"] else "download"
        add_row(rows, w["name"] + (" (default)" if w["default"] else ""),
                f"{w['summary']}; preset {w['preset']}; data: {w['data']}",
                f"{figures or '-'}" + (f" by `{w['measured_by']}`" if w["measured_by"] else ""),
                f"{where}, {w['size'] / 1e6:.2f} MB, sha256 {w['sha256'][:12]}, license {w['license']}")
    return [rows]


# -- resolution -------------------------------------------------------------------------------
def resolve_weights(model: RegisteredModel, reference: str, log: Log = None) -> Path:
    """A local zoo checkpoint of ``model`` for ``reference`` (NAME, URL#sha256=HEX, PATH or hf://org/repo[@rev]).

    Downloads are cached and hash-checked; the file's metadata is validated as a checkpoint's
    (:func:`zoo_core.validate.check_checkpoint_meta`) before the path is returned.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise UsageError("--weights is empty; give a weights name, URL#sha256=HEX, a path or hf://org/repo")
    if reference.startswith(HUB_PREFIX):
        return _check_folder(model, _from_hub(reference, log))
    if reference.startswith(("https://", "http://")):
        url, digest = split_url(reference)
        return _check_file(model, _download(url, digest, None, log), reference)
    if "://" in reference:
        raise UsageError(f"--weights {reference[:80]}: only https://, http:// and hf:// addresses are read")
    names = {w.name for w in model.spec.weights}
    if reference in names or (reference == DEFAULT_NAME and model.spec.weights):
        return _check_file(model, _from_declaration(model, declared(model.spec, reference), log), reference)
    path = Path(reference).expanduser()
    if path.is_dir():
        return _check_folder(model, path)
    if path.is_file():
        return _check_file(model, path, reference)
    known = f"its weights: {', '.join(sorted(names))}" if names else f"{model.name} declares no weights"
    raise UsageError(f"--weights {reference}: no such file or folder, and not a weights name of {model.name} "
                     f"({known}); URLs need URL#sha256=HEX, Hub repositories hf://org/repo")


def pull(model: RegisteredModel, name: str | None, log: Log = None) -> tuple[Weights, Path]:
    """Fetch (or find) declared weights ``name`` of ``model``; the local file, checked."""
    weights = declared(model.spec, name)
    return weights, _check_file(model, _from_declaration(model, weights, log), weights.name)


def shipped_file(weights: Weights) -> Path | None:
    """The file a distribution ships for ``weights``, where it is installed as a plain file."""
    if not weights.file:
        return None
    from importlib import resources

    package, _, relative = weights.file.partition(":")
    try:
        resource = resources.files(package).joinpath(*relative.split("/"))
    except ModuleNotFoundError:
        return None
    # Editable and wheel installs keep package data as plain files; a zipped install falls back to the URLs.
    return Path(str(resource)) if isinstance(resource, Path) and resource.is_file() else None


def _from_declaration(model: RegisteredModel, weights: Weights, log: Log) -> Path:
    from zoo_core.download import verify_file

    local = shipped_file(weights)
    if local is not None:
        verify_file(local, weights.sha256, weights.size, what=f"{model.name} weights {weights.name!r}")
        return local
    if not weights.urls:
        raise ZooError(f"{model.name} weights {weights.name!r} ship as {weights.file}, which is not installed "
                       f"here; reinstall {model.distribution}")
    errors = []
    for url in weights.urls:  # mirrors in order; the last failure is the one reported
        try:
            return _download(url, weights.sha256, weights.size, log)
        except ZooError as error:
            errors.append(error)
            if offline():
                break
    raise errors[-1]


def _download(url: str, sha256: str, size: int | None, log: Log) -> Path:
    from zoo_core.download import fetch

    return fetch(url, sha256, cached_path(sha256), size=size, log=log, offline=offline())


def _from_hub(reference: str, log: Log) -> Path:
    """The local folder of a Hub repository's snapshot (downloaded or cached by huggingface_hub)."""
    repo, revision = split_hub(reference)
    try:
        import huggingface_hub
        from huggingface_hub import constants
        from huggingface_hub import errors as hub_errors
    except ImportError:
        raise UsageError(f"--weights {reference}: reading the Hub needs huggingface_hub; install it with "
                         "pip install 'zoo-core[hub]'") from None
    local_only = offline() or bool(constants.HF_HUB_OFFLINE)
    try:
        folder = huggingface_hub.snapshot_download(repo, revision=revision, local_files_only=local_only,
                                                   allow_patterns=[HUB_WEIGHTS, HUB_CONFIG, "README.md"],
                                                   library_name="zoo")
    except hub_errors.LocalEntryNotFoundError:
        cache = constants.HF_HUB_CACHE
        why = "offline (ZOO_OFFLINE or HF_HUB_OFFLINE set)" if local_only else "the Hub cannot be reached"
        raise ZooError(f"--weights {reference}: {why} and no copy in the Hub cache {cache}; download it where the "
                       "Hub is reachable (zoo pull or huggingface-cli download) or pass a local folder") from None
    except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError):
        raise ZooError(f"--weights {reference}: repository {repo} not found on the Hub, or private and no token "
                       "(huggingface-cli login)") from None
    except hub_errors.RevisionNotFoundError:
        raise ZooError(f"--weights {reference}: {repo} has no revision {revision!r}") from None
    except (hub_errors.HfHubHTTPError, OSError, ValueError) as error:
        from zoo_core.errors import error_line

        raise ZooError(f"--weights {reference}: the Hub download failed ({error_line(error, 200)})") from None
    if log is not None:
        log(f"zoo: {reference} is {folder}")
    return Path(folder)


# -- checks of what was found -----------------------------------------------------------------
def read_metadata(path: Path) -> dict[str, Any]:
    """The zoo metadata of a safetensors file, read from its header only (no tensor is loaded)."""
    from zoo_core.checkpoint import FORMAT

    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= 100 << 20:
                raise ValueError("no safetensors header")
            header = json.loads(handle.read(length))
        meta = json.loads(header["__metadata__"]["zoo"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise ZooError(f"{path} is not a zoo checkpoint (a .safetensors file with zoo metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ZooError(f"{path} is not a zoo checkpoint of format {FORMAT}")
    return meta


def _check_file(model: RegisteredModel, path: Path, reference: str) -> Path:
    from zoo_core.validate import check_checkpoint_meta

    meta = read_metadata(path)
    if meta.get("model") != model.name:
        raise ZooError(f"--weights {reference}: {path} holds weights of {str(meta.get('model'))[:40]!r}, "
                       f"not {model.name!r}")
    check_checkpoint_meta(model.spec, meta, path)
    return path


def _check_folder(model: RegisteredModel, folder: Path) -> Path:
    """``model.safetensors`` of a Hub-layout folder, whose config.json must agree with it."""
    from zoo_core.validate import read_json_object

    weights, config_file = folder / HUB_WEIGHTS, folder / HUB_CONFIG
    if not weights.is_file():
        raise ZooError(f"--weights {folder}: a weights folder holds {HUB_WEIGHTS} and {HUB_CONFIG} "
                       f"(as `zoo card` writes them); {HUB_WEIGHTS} is missing")
    path = _check_file(model, weights, str(folder))
    if config_file.is_file():
        record = read_json_object(config_file, "weights config")
        meta = read_metadata(weights)
        if record.get("model") != model.name or record.get("config") != meta.get("config"):
            raise ZooError(f"{config_file} does not describe {weights} (model or config differ); the folder was "
                           "edited or mixes two models")
    return path


# -- writing inference weights ----------------------------------------------------------------
def write_inference_weights(model: RegisteredModel, checkpoint: Path, out: Path, dtype: str = "float32",
                            provenance: Mapping[str, Any] | None = None) -> Path:
    """Copy ``checkpoint``'s network weights (no optimizer state) to ``out`` as a zoo checkpoint.

    ``dtype="float16"`` halves floating tensors (the file shrinks by half; networks load them back as float32).
    ``provenance`` is stored in the metadata under ``weights``.
    """
    import torch
    from safetensors.torch import save

    from zoo_core import __version__
    from zoo_core import io as zio
    from zoo_core.checkpoint import CHECKSUM_KEY, FORMAT, tensors_sha256
    from zoo_core.models import read_checkpoint

    if dtype not in ("float32", "float16", "bfloat16"):
        raise UsageError(f"weights dtype must be float32, float16 or bfloat16, got {dtype!r}")
    ckpt = read_checkpoint(model, checkpoint)
    target = getattr(torch, dtype)
    tensors = {key: (value.to(target) if value.is_floating_point() else value).contiguous().clone()
               for key, value in ckpt.tensors.items() if key.startswith("net/")}
    meta = {"format": FORMAT, "model": model.name, "plugin_version": model.version, "zoo_version": __version__,
            "config": ckpt.config, "weights": {"dtype": dtype, **(provenance or {})}}
    if "seed" in ckpt.meta:
        meta["seed"] = ckpt.meta["seed"]
    meta[CHECKSUM_KEY] = tensors_sha256(tensors)
    zio.write_bytes(out, save(tensors, metadata={"zoo": json.dumps(meta)}))
    return Path(out)


def model_of(reference: str, log: Log = None) -> str:
    """The model whose weights ``reference`` (URL#sha256=HEX, a path or hf://org/repo[@rev]) holds, read from the
    file's zoo metadata, so that ``zoo.load("hf://org/repo")`` needs no model name. The file is fetched (and
    cached) as :func:`resolve_weights` would fetch it."""
    if reference.startswith(HUB_PREFIX):
        path = _from_hub(reference, log) / HUB_WEIGHTS
    elif reference.startswith(("https://", "http://")):
        path = _download(*split_url(reference), None, log)
    else:
        path = Path(reference).expanduser()
        path = path / HUB_WEIGHTS if path.is_dir() else path
        if not path.is_file():
            raise UsageError(f"{reference}: no such file or folder, and not an installed model's name")
    model = read_metadata(path).get("model")
    if not isinstance(model, str):
        raise ZooError(f"{path}: its zoo metadata names no model")
    return model
