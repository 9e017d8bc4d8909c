"""The GGUF header inspector: the tiny fixture pair, crafted headers, and broken or hostile files."""

from __future__ import annotations

import importlib.util
from pathlib import Path
import struct
import time
from types import ModuleType

import gguf
import pytest

from custom_components.miloco.engine.gguf import (
    GgufInfo,
    GgufTruncated,
    GgufUnsupported,
    NotGguf,
    NotTextModel,
    NotVisionProjector,
    ProjectorMismatch,
    check_model_pair,
    inspect_gguf,
    require_text_model,
    require_vision_projector,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "models"
MODEL = FIXTURES / "tiny-qwen25vl.gguf"
MMPROJ = FIXTURES / "tiny-qwen25vl-mmproj.gguf"

# GGUF value types and ggml tensor types used by the crafted files below.
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10
T_F32, T_F16, T_Q4_0, T_Q4_K, T_Q8_0 = 0, 1, 2, 12, 8


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, value: int) -> bytes:
    return _str(key) + struct.pack("<II", U32, value)


def kv_str(key: str, value: str) -> bytes:
    return _str(key) + struct.pack("<I", STRING) + _str(value)


def kv_bool(key: str, value: bool) -> bytes:
    return _str(key) + struct.pack("<I?", BOOL, value)


def kv_str_array(key: str, values: list[str]) -> bytes:
    return _str(key) + struct.pack("<IIQ", ARRAY, STRING, len(values)) + b"".join(_str(v) for v in values)


def kv_f32_array(key: str, values: list[float]) -> bytes:
    packed = struct.pack(f"<{len(values)}f", *values)
    return _str(key) + struct.pack("<IIQ", ARRAY, F32, len(values)) + packed


def gguf_bytes(
    kvs: list[bytes],
    tensors: list[tuple[str, list[int], int, int]],
    *,
    data: int,
    alignment: int = 32,
    version: int = 3,
    magic: bytes = b"GGUF",
) -> bytes:
    """Return a GGUF file: header, key-values, tensor infos, padding, then `data` zero bytes of tensor data."""
    out = magic + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        out += _str(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ggml_type, offset)
    if tensors:
        out += b"\0" * (-len(out) % alignment)
    return out + b"\0" * data


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def clip_file(
    tmp_path: Path, *, extra_tensor: bool = True, projection: int = 64, vision: bool = True
) -> Path:
    """Return a minimal (header-only valid) Qwen2.5-VL projector."""
    kvs = [
        kv_str("general.architecture", "clip"),
        kv_bool("clip.has_vision_encoder", vision),
        kv_str("clip.projector_type", "qwen2.5vl_merger"),
        kv_u32("clip.vision.projection_dim", projection),
    ]
    tensors = [("v.patch_embd.weight", [14, 14, 3, 8], T_F16, 0)]
    if extra_tensor:
        tensors.append(("v.patch_embd.weight.1", [14, 14, 3, 8], T_F16, 9408))
    return write(tmp_path, "mmproj.gguf", gguf_bytes(kvs, tensors, data=2 * 9408))


# The tiny fixture pair.


def test_tiny_text_model_inspects() -> None:
    info = inspect_gguf(MODEL)
    assert info.architecture == "qwen2vl"
    assert info.version == 3
    assert info.tensor_count == 27
    assert info.file_size == MODEL.stat().st_size
    assert info.data_end == info.file_size
    assert info.metadata["general.name"] == "tiny-qwen25vl"
    assert info.metadata["qwen2vl.embedding_length"] == 64
    assert info.metadata["tokenizer.ggml.add_bos_token"] is False
    # Arrays (the vocabulary) and long strings (the chat template) are skipped, not kept.
    assert "tokenizer.ggml.tokens" not in info.metadata
    assert "tokenizer.chat_template" not in info.metadata
    assert "token_embd.weight" in info.tensor_names


def test_tiny_projector_inspects() -> None:
    info = inspect_gguf(MMPROJ)
    assert info.architecture == "clip"
    assert info.tensor_count == 39
    assert info.data_end == info.file_size == MMPROJ.stat().st_size
    assert info.metadata["clip.projector_type"] == "qwen2.5vl_merger"
    assert info.metadata["clip.has_vision_encoder"] is True
    assert "v.patch_embd.weight.1" in info.tensor_names


def test_data_end_agrees_with_the_gguf_package() -> None:
    for path in (MODEL, MMPROJ):
        reader = gguf.GGUFReader(path)
        expected = max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
        assert inspect_gguf(path).data_end == expected


def test_pair_checks_out() -> None:
    model, mmproj = check_model_pair(MODEL, MMPROJ)
    assert isinstance(model, GgufInfo)
    assert (model.architecture, mmproj.architecture) == ("qwen2vl", "clip")


def test_text_model_given_as_projector() -> None:
    with pytest.raises(NotVisionProjector):
        check_model_pair(MODEL, MODEL)


def test_projector_given_as_model() -> None:
    with pytest.raises(NotTextModel):
        check_model_pair(MMPROJ, MMPROJ)


def test_require_helpers_match_the_pair_check() -> None:
    require_text_model(inspect_gguf(MODEL))
    require_vision_projector(inspect_gguf(MMPROJ))
    with pytest.raises(NotTextModel):
        require_text_model(inspect_gguf(MMPROJ))
    with pytest.raises(NotVisionProjector):
        require_vision_projector(inspect_gguf(MODEL))


def test_missing_file_propagates(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        inspect_gguf(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError):
        check_model_pair(MODEL, tmp_path / "nope.gguf")


# Broken files.


def test_truncated_body(tmp_path: Path) -> None:
    cut = write(tmp_path, "cut.gguf", MODEL.read_bytes()[: MODEL.stat().st_size // 2])
    with pytest.raises(GgufTruncated):
        inspect_gguf(cut)


def test_truncated_inside_the_header(tmp_path: Path) -> None:
    # 3000 bytes end inside the vocabulary array.
    cut = write(tmp_path, "cut.gguf", MODEL.read_bytes()[:3000])
    with pytest.raises(GgufTruncated):
        inspect_gguf(cut)


def test_one_byte_short(tmp_path: Path) -> None:
    cut = write(tmp_path, "cut.gguf", MMPROJ.read_bytes()[:-1])
    with pytest.raises(GgufTruncated):
        inspect_gguf(cut)


def test_wrong_magic(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", b"GGML" + MODEL.read_bytes()[4:])
    with pytest.raises(NotGguf):
        inspect_gguf(path)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", NotGguf),
        (b"GGU", NotGguf),
        (b"abcd", NotGguf),
        (b"GGUF", GgufTruncated),
        (b"GGUF\x03\x00\x00\x00", GgufTruncated),
    ],
)
def test_tiny_files(tmp_path: Path, content: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        inspect_gguf(write(tmp_path, "x.gguf", content))


@pytest.mark.parametrize("version", [0, 1, 4, 3 << 24])
def test_unsupported_versions(tmp_path: Path, version: int) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([], [], data=0, version=version))
    with pytest.raises(GgufUnsupported):
        inspect_gguf(path)


def test_version_2_is_read(tmp_path: Path) -> None:
    path = write(
        tmp_path, "x.gguf", gguf_bytes([kv_str("general.architecture", "llama")], [], data=0, version=2)
    )
    info = inspect_gguf(path)
    assert (info.version, info.architecture, info.tensor_count) == (2, "llama", 0)
    assert info.data_end == info.file_size


def test_unknown_tensor_type(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([], [("w", [32], 99, 0)], data=128))
    with pytest.raises(GgufUnsupported):
        inspect_gguf(path)


def test_unknown_metadata_type(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([_str("k") + struct.pack("<I", 77)], [], data=0))
    with pytest.raises(GgufUnsupported):
        inspect_gguf(path)


# Hostile counts must fail fast, not allocate.


def test_absurd_kv_count(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62))
    with pytest.raises(NotGguf):
        inspect_gguf(path)


def test_absurd_tensor_count(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0))
    with pytest.raises(NotGguf):
        inspect_gguf(path)


def test_absurd_string_length(tmp_path: Path) -> None:
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62) + b"key"
    with pytest.raises(GgufTruncated):
        inspect_gguf(write(tmp_path, "x.gguf", body))


def test_absurd_key_length_within_the_file(tmp_path: Path) -> None:
    # The file really is that long (sparse), so only the plausibility cap can stop the allocation.
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 10**7)
    path = write(tmp_path, "x.gguf", body)
    with path.open("r+b") as file:
        file.truncate(len(body) + 10**7 + 64)
    with pytest.raises(NotGguf):
        inspect_gguf(path)


def test_absurd_array_length(tmp_path: Path) -> None:
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _str("k") + struct.pack("<IIQ", ARRAY, STRING, 2**40)
    started = time.monotonic()
    with pytest.raises((GgufTruncated, NotGguf)):
        inspect_gguf(write(tmp_path, "x.gguf", body))
    assert time.monotonic() - started < 1


def test_array_longer_than_the_file(tmp_path: Path) -> None:
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + _str("k") + struct.pack("<IIQ", ARRAY, U32, 10**6)
    with pytest.raises(GgufTruncated):
        inspect_gguf(write(tmp_path, "x.gguf", body))


def test_too_many_dimensions(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([], [("w", [1, 1, 1, 1, 1], T_F32, 0)], data=32))
    with pytest.raises(NotGguf):
        inspect_gguf(path)


def test_bad_alignment(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([kv_u32("general.alignment", 48)], [], data=0))
    with pytest.raises(NotGguf):
        inspect_gguf(path)


def test_big_vocabulary_is_skipped_quickly(tmp_path: Path) -> None:
    tokens = [f"tok{i}" for i in range(200_000)]
    kvs = [kv_str("general.architecture", "qwen2"), kv_str_array("tokenizer.ggml.tokens", tokens)]
    path = write(tmp_path, "x.gguf", gguf_bytes(kvs, [], data=0))
    started = time.monotonic()
    info = inspect_gguf(path)
    assert time.monotonic() - started < 2
    assert info.architecture == "qwen2"
    assert info.data_end == info.file_size


# Sizes of quantized tensors and alignment.


def test_quantized_sizes_and_custom_alignment(tmp_path: Path) -> None:
    # Q4_0: 64x2 elements = 4 blocks of 18 bytes; Q4_K: 256 elements = 1 block of 144 bytes;
    # Q8_0: 32 elements = 1 block of 34 bytes. Offsets are padded to the 64-byte alignment.
    tensors = [("a", [64, 2], T_Q4_0, 0), ("b", [256], T_Q4_K, 128), ("c", [32], T_Q8_0, 320)]
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", 64)]
    content = gguf_bytes(kvs, tensors, data=320 + 34, alignment=64)
    info = inspect_gguf(write(tmp_path, "x.gguf", content))
    assert info.data_end == len(content)
    with pytest.raises(GgufTruncated):
        inspect_gguf(write(tmp_path, "y.gguf", content[:-1]))


def test_row_not_whole_blocks(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([], [("w", [33], T_Q4_0, 0)], data=64))
    with pytest.raises(NotGguf):
        inspect_gguf(path)


# Pair checks on crafted projectors.


def test_projector_without_second_patch_kernel(tmp_path: Path) -> None:
    # llama.cpp segfaults on such a file, so the inspector must refuse it.
    with pytest.raises(NotVisionProjector):
        check_model_pair(MODEL, clip_file(tmp_path, extra_tensor=False))


def test_projector_for_another_model_size(tmp_path: Path) -> None:
    with pytest.raises(ProjectorMismatch):
        check_model_pair(MODEL, clip_file(tmp_path, projection=3584))


def test_projector_without_vision_encoder(tmp_path: Path) -> None:
    with pytest.raises(NotVisionProjector):
        check_model_pair(MODEL, clip_file(tmp_path, vision=False))


def test_crafted_projector_passes(tmp_path: Path) -> None:
    _, mmproj = check_model_pair(MODEL, clip_file(tmp_path))
    assert mmproj.metadata["clip.vision.projection_dim"] == 64


def test_model_without_architecture(tmp_path: Path) -> None:
    path = write(tmp_path, "x.gguf", gguf_bytes([kv_str("general.name", "x")], [], data=0))
    with pytest.raises(NotTextModel):
        check_model_pair(path, MMPROJ)


# The fixtures are reproducible from the script.


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny_vlm", REPO / "scripts" / "make_tiny_vlm.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixtures_regenerate_byte_for_byte(tmp_path: Path) -> None:
    script = _load_script()
    assert script.main(["--out", str(tmp_path)]) == 0
    for name in ("tiny-qwen25vl.gguf", "tiny-qwen25vl-mmproj.gguf", "SHA256SUMS"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), name
    assert script.main(["--check"]) == 0


def test_check_flags_a_changed_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _load_script()
    assert script.main(["--out", str(tmp_path)]) == 0
    model = tmp_path / "tiny-qwen25vl.gguf"
    model.write_bytes(model.read_bytes()[:-1] + b"\x01")
    assert script.main(["--check", "--out", str(tmp_path)]) == 1
    assert "differs" in capsys.readouterr().err
