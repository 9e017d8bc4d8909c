"""Inspect a GGUF file's header without loading the model, to validate user-supplied model files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
import struct
from typing import BinaryIO, Final

GGUF_MAGIC: Final = b"GGUF"
SUPPORTED_VERSIONS: Final = frozenset({2, 3})
DEFAULT_ALIGNMENT: Final = 32

# Real files have a few dozen keys, a few thousand tensors and strings of a few kB (chat templates); far
# larger counts only come from corrupt or hostile headers and must not turn into huge allocations.
MAX_KV_COUNT: Final = 1_000_000
MAX_TENSOR_COUNT: Final = 1_000_000
MAX_STRING_LEN: Final = 100_000_000
MAX_ARRAY_LEN: Final = 100_000_000
MAX_TENSOR_DIMS: Final = 4
MAX_TENSOR_NAME_LEN: Final = 1024
MAX_KEY_LEN: Final = 65_536
# Strings longer than this (chat templates, licences) are skipped rather than kept in `metadata`.
MAX_KEPT_STRING_LEN: Final = 256

# Projector types whose 3D patch convolution is stored as two kernels (llama.cpp 0.3.36's clip graphs for
# these read `v.patch_embd.weight.1` unchecked or assert on it, so a file without it kills the process).
TWO_KERNEL_PROJECTORS: Final = frozenset(
    {"qwen2vl_merger", "qwen2.5vl_merger", "qwen2.5o", "glm4v", "exaone4_5", "mimovl", "minimax_m3"}
)
SECOND_PATCH_KERNEL: Final = "v.patch_embd.weight.1"

_CHUNK: Final = 1 << 20
_U64: Final = struct.Struct("<Q")

# GGUF metadata value types: struct format of the fixed-size ones.
_TYPE_STRING: Final = 8
_TYPE_ARRAY: Final = 9
_SCALAR_FORMATS: Final[Mapping[int, str]] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_TYPE_UINT32: Final = 4

# ggml tensor types: (elements per block, bytes per block), from the vendored ggml.c type_traits table.
_QK_K: Final = 256
GGML_BLOCK_SIZES: Final[Mapping[int, tuple[int, int]]] = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 2 + 16),  # Q4_0
    3: (32, 2 + 2 + 16),  # Q4_1
    6: (32, 2 + 4 + 16),  # Q5_0
    7: (32, 2 + 2 + 4 + 16),  # Q5_1
    8: (32, 2 + 32),  # Q8_0
    9: (32, 4 + 4 + 32),  # Q8_1
    10: (_QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),  # Q2_K
    11: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),  # Q3_K
    12: (_QK_K, 2 + 2 + _QK_K // 2 + 12),  # Q4_K
    13: (_QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),  # Q5_K
    14: (_QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),  # Q6_K
    15: (_QK_K, 4 + _QK_K + _QK_K // 8),  # Q8_K
    16: (_QK_K, 2 + _QK_K // 4),  # IQ2_XXS
    17: (_QK_K, 2 + _QK_K // 4 + _QK_K // 32),  # IQ2_XS
    18: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8),  # IQ3_XXS
    19: (_QK_K, 2 + _QK_K // 8 + _QK_K // 16),  # IQ1_S
    20: (32, 2 + 16),  # IQ4_NL
    21: (_QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),  # IQ3_S
    22: (_QK_K, 2 + _QK_K // 4 + _QK_K // 16),  # IQ2_S
    23: (_QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),  # IQ4_XS
    24: (1, 1),  # I8
    25: (1, 2),  # I16
    26: (1, 4),  # I32
    27: (1, 8),  # I64
    28: (1, 8),  # F64
    29: (_QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),  # IQ1_M
    30: (1, 2),  # BF16
    34: (_QK_K, 2 + 4 * 13),  # TQ1_0
    35: (_QK_K, 2 + 64),  # TQ2_0
    39: (32, 1 + 16),  # MXFP4
    40: (64, 4 + 32),  # NVFP4
    41: (128, 2 + 16),  # Q1_0
    42: (64, 2 + 16),  # Q2_0
}

MetadataValue = str | int | float | bool


class GgufError(Exception):
    """The file is not a usable GGUF file."""


class NotGguf(GgufError):
    """The file is not GGUF at all, or its header is corrupt."""


class GgufTruncated(GgufError):
    """The file ends before its header or its tensor data does (an interrupted download)."""


class GgufUnsupported(GgufError):
    """The file is GGUF, but of a version or tensor type this inspector does not know."""


class NotVisionProjector(GgufError):
    """The file given as the vision projector (mmproj) is not one."""


class NotTextModel(GgufError):
    """The file given as the language model is a vision projector or not a model at all."""


class ProjectorMismatch(GgufError):
    """The vision projector was made for a model of another size."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GgufInfo:
    """What the header of a GGUF file says about it."""

    architecture: str | None
    version: int
    tensor_count: int
    file_size: int
    data_end: int
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    tensor_names: frozenset[str] = field(default=frozenset(), repr=False)


class _Reader:
    """A forward-only buffered reader that refuses to read past the end of the file."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        """Wrap an open binary file of known size."""
        self._file = file
        self._size = size
        self._buf = b""
        self._pos = 0
        self._base = 0

    def tell(self) -> int:
        """Return the absolute file offset of the next byte."""
        return self._base + self._pos

    def remaining(self) -> int:
        """Return how many bytes are left in the file."""
        return self._size - self.tell()

    def _ensure(self, n: int) -> None:
        if len(self._buf) - self._pos >= n:
            return
        if n > self.remaining():
            raise GgufTruncated("the file ends inside its header")
        rest = self._buf[self._pos :]
        self._base += self._pos
        self._buf = rest + self._file.read(max(n - len(rest), _CHUNK))
        self._pos = 0
        if len(self._buf) < n:
            raise GgufTruncated("the file ends inside its header")

    def read(self, n: int) -> bytes:
        """Return the next n bytes."""
        self._ensure(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def unpack(self, fmt: str, size: int) -> int | float | bool:
        """Return one little-endian value of the given struct format and size."""
        self._ensure(size)
        (value,) = struct.unpack_from(fmt, self._buf, self._pos)
        self._pos += size
        return value  # type: ignore[no-any-return]

    def u32(self) -> int:
        """Return the next uint32."""
        return int(self.unpack("<I", 4))

    def u64(self) -> int:
        """Return the next uint64."""
        return int(self.unpack("<Q", 8))

    def skip(self, n: int) -> None:
        """Move n bytes forward without reading them when they are not buffered."""
        if n > self.remaining():
            raise GgufTruncated("the file ends inside its header")
        if n <= len(self._buf) - self._pos:
            self._pos += n
            return
        target = self.tell() + n
        self._file.seek(target)
        self._base, self._buf, self._pos = target, b"", 0

    def string_length(self) -> int:
        """Return the length prefix of a string, refusing implausible ones."""
        length = self.u64()
        if length > self.remaining():
            raise GgufTruncated("a header string runs past the end of the file")
        if length > MAX_STRING_LEN:
            raise NotGguf("the header holds an implausibly long string")
        return length

    def skip_strings(self, count: int) -> None:
        """Skip `count` length-prefixed strings; a tight loop, as vocabularies hold 150k+ of them."""
        unpack_u64 = _U64.unpack_from
        for _ in range(count):
            if len(self._buf) - self._pos < 8:
                self._ensure(8)
            (length,) = unpack_u64(self._buf, self._pos)
            self._pos += 8
            if length <= len(self._buf) - self._pos:
                self._pos += length
            else:
                self.skip(length)  # raises GgufTruncated when it runs past the end


def _read_value(reader: _Reader, value_type: int) -> MetadataValue | None:
    """Return a scalar metadata value, or skip an array / overlong string and return None."""
    if value_type == _TYPE_STRING:
        length = reader.string_length()
        if length > MAX_KEPT_STRING_LEN:
            reader.skip(length)
            return None
        return reader.read(length).decode("utf-8", errors="replace")
    if value_type == _TYPE_ARRAY:
        _skip_array(reader)
        return None
    fmt = _SCALAR_FORMATS.get(value_type)
    if fmt is None:
        raise GgufUnsupported(f"unknown metadata value type {value_type}")
    return reader.unpack(fmt, struct.calcsize(fmt))


def _skip_array(reader: _Reader) -> None:
    """Skip an array value: fixed-size elements in one jump, strings by their length prefixes."""
    item_type = reader.u32()
    count = reader.u64()
    if count > MAX_ARRAY_LEN:
        raise NotGguf("the header holds an implausibly long array")
    if item_type == _TYPE_STRING:
        # Each string costs at least its 8-byte length prefix: catch a cut file before walking the array.
        if count * 8 > reader.remaining():
            raise GgufTruncated("a header array runs past the end of the file")
        reader.skip_strings(count)
        return
    if item_type == _TYPE_ARRAY:
        for _ in range(count):
            _skip_array(reader)
        return
    fmt = _SCALAR_FORMATS.get(item_type)
    if fmt is None:
        raise GgufUnsupported(f"unknown metadata value type {item_type}")
    reader.skip(count * struct.calcsize(fmt))


def _read_header(reader: _Reader) -> tuple[int, int, int]:
    """Return version, tensor count and key-value count after checking the magic."""
    if reader.remaining() < 4 or reader.read(4) != GGUF_MAGIC:
        raise NotGguf("the file does not start with the GGUF magic")
    version = reader.u32()
    if version & 0xFFFF == 0 and version:
        raise GgufUnsupported("big-endian GGUF files are not supported")
    if version not in SUPPORTED_VERSIONS:
        raise GgufUnsupported(f"GGUF version {version} is not supported")
    tensor_count = reader.u64()
    kv_count = reader.u64()
    if tensor_count > MAX_TENSOR_COUNT:
        raise NotGguf("the header declares an implausible number of tensors")
    if kv_count > MAX_KV_COUNT:
        raise NotGguf("the header declares an implausible number of metadata keys")
    return version, tensor_count, kv_count


def _read_metadata(reader: _Reader, kv_count: int) -> tuple[dict[str, MetadataValue], int]:
    """Return the kept scalar metadata and the data alignment."""
    metadata: dict[str, MetadataValue] = {}
    alignment = DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key_length = reader.string_length()
        if key_length > MAX_KEY_LEN:
            raise NotGguf("the header holds an implausibly long key")
        key = reader.read(key_length).decode("utf-8", errors="replace")
        value_type = reader.u32()
        value = _read_value(reader, value_type)
        if key == "general.alignment":
            if value_type != _TYPE_UINT32 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise NotGguf("the header declares an invalid alignment")
            alignment = value
        if value is not None:
            metadata[key] = value
    return metadata, alignment


def _tensor_info(reader: _Reader) -> tuple[str, int]:
    """Read one tensor info; return its name and where its data ends, relative to the data section."""
    name_length = reader.string_length()
    if name_length > MAX_TENSOR_NAME_LEN:
        raise NotGguf("the header holds an implausibly long tensor name")
    name = reader.read(name_length).decode("utf-8", errors="replace")
    n_dims = reader.u32()
    if n_dims > MAX_TENSOR_DIMS:
        raise NotGguf("a tensor has too many dimensions")
    dims = [reader.u64() for _ in range(n_dims)]
    ggml_type = reader.u32()
    offset = reader.u64()
    block = GGML_BLOCK_SIZES.get(ggml_type)
    if block is None:
        raise GgufUnsupported(f"unknown tensor type {ggml_type}")
    elements_per_block, bytes_per_block = block
    if dims and dims[0] % elements_per_block:
        raise NotGguf("a tensor's row is not a whole number of blocks")
    elements = 1
    for dim in dims:
        elements *= dim
    return name, offset + elements // elements_per_block * bytes_per_block


def inspect_gguf(path: Path) -> GgufInfo:
    """Return what the header of a GGUF file says, checking the tensor data is all there; blocking I/O."""
    with path.open("rb") as file:
        file_size = path.stat().st_size
        reader = _Reader(file, file_size)
        version, tensor_count, kv_count = _read_header(reader)
        metadata, alignment = _read_metadata(reader, kv_count)
        tensors = dict(_tensor_info(reader) for _ in range(tensor_count))
    data_start = reader.tell()
    if tensor_count:
        # The data section starts at the next multiple of the alignment after the tensor infos.
        data_start += -data_start % alignment
    data_end = data_start + max(tensors.values(), default=0)
    if data_end > file_size:
        raise GgufTruncated("the file is shorter than its tensor data")
    architecture = metadata.get("general.architecture")
    return GgufInfo(
        architecture=architecture if isinstance(architecture, str) else None,
        version=version,
        tensor_count=tensor_count,
        file_size=file_size,
        data_end=data_end,
        metadata=metadata,
        tensor_names=frozenset(tensors),
    )


def require_text_model(info: GgufInfo) -> None:
    """Raise NotTextModel unless the header describes a language model."""
    if info.architecture is None:
        raise NotTextModel("the model file does not name its architecture")
    if info.architecture == "clip":
        raise NotTextModel("the model file is a vision projector (mmproj)")


def require_vision_projector(info: GgufInfo) -> None:
    """Raise NotVisionProjector unless the header describes a vision projector the runtime can load."""
    meta = info.metadata
    if info.architecture != "clip":
        raise NotVisionProjector("the projector file is not a clip/mmproj file")
    if meta.get("clip.has_vision_encoder") is not True:
        raise NotVisionProjector("the projector file has no vision encoder")
    projector_type = meta.get("clip.projector_type") or meta.get("clip.vision.projector_type")
    if not projector_type:
        raise NotVisionProjector("the projector file does not name its projector type")
    # Caught here because the runtime segfaults (rather than failing) on such a projector.
    if projector_type in TWO_KERNEL_PROJECTORS and SECOND_PATCH_KERNEL not in info.tensor_names:
        raise NotVisionProjector("the projector file lacks tensors the runtime needs")


def require_matching_pair(model: GgufInfo, mmproj: GgufInfo) -> None:
    """Raise ProjectorMismatch when the projector's output size differs from the model's embedding size."""
    projection = mmproj.metadata.get("clip.vision.projection_dim")
    embedding = model.metadata.get(f"{model.architecture}.embedding_length")
    # llama.cpp refuses this pair at load time ("mismatch between text model and mmproj"); say so earlier.
    if isinstance(projection, int) and isinstance(embedding, int) and projection != embedding:
        raise ProjectorMismatch(
            f"the projector outputs size {projection} but the model expects size {embedding}"
        )


def check_model_pair(model: Path, mmproj: Path) -> tuple[GgufInfo, GgufInfo]:
    """Inspect a language model and its vision projector and check they belong together; blocking I/O."""
    model_info = inspect_gguf(model)
    require_text_model(model_info)
    mmproj_info = inspect_gguf(mmproj)
    require_vision_projector(mmproj_info)
    require_matching_pair(model_info, mmproj_info)
    return model_info, mmproj_info
