"""Write a tiny random-weight Qwen2.5-VL-style GGUF pair (text model + mmproj) for the tests."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
import hashlib
import itertools
import logging
from pathlib import Path
import re
import sys
import tempfile
from typing import Any

from gguf import GGMLQuantizationType, GGUFWriter, TokenType
import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "models"
MODEL_NAME = "tiny-qwen25vl.gguf"
MMPROJ_NAME = "tiny-qwen25vl-mmproj.gguf"
SUMS_NAME = "SHA256SUMS"
SEED = 20251128
TEST_MODEL_KEY = "miloco.test_model"

# Text model: head_dim 16, so the M-RoPE sections must add up to 8 (same ratio as Qwen2.5-VL's 16/24/24/0).
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 96
N_LAYER = 2
ROPE_SECTIONS = (2, 3, 3, 0)

# Vision tower: feed-forward size must differ from the hidden size, or llama.cpp "fixes" swapped up/down weights.
V_EMBD = 32
V_HEAD = 2
V_FF = 48
V_LAYER = 2
PATCH = 14
N_MERGES = 100

# Random weights stay small so that the bias channel below dominates the logits.
WEIGHT_STD = 0.02
# Residual-stream channel that carries a constant, so output.weight can bias chosen tokens.
BIAS_CHANNEL = 0

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Greedy constrained decoding ends fast when closing tokens win wherever the grammar allows them. The quote
# must beat the brackets: inside a string any character is allowed and only a quote ends it ("[" then '"'
# gives the bounded '[""]').
TOKEN_BIAS = {"<|im_end|>": 5.0, '"': 4.0, "]": 3.0, "}": 3.0}

# The stock Qwen2.5-VL chat template, so llama.cpp's generic mtmd chat format works with the fixture too.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# BPE merges are learned from this text, so common JSON and prompt fragments get multi-byte tokens.
MERGE_CORPUS = (
    '{"result": "yes"} {"result": "no"} {"gestures": [], "activities": [], "person": true, '
    '"rules": {"r1": false}} thumbs up, v sign, open palm, ok, shaka sign, wave. watch tv, reading, '
    "play on the phone, play esports, workout. Image sequence is as follows: Do the images meet the "
    "following condition: someone is showing a thumbs-up. You are a smart camera assistant. The frames "
    "are taken at 2 frames per second, 6 frames in total. Answer with JSON only. "
)

Array = NDArray[np.float32]


def bytes_to_unicode() -> dict[int, str]:
    """Return GPT-2's reversible byte-to-printable-character map."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def learn_merges(corpus: str, count: int) -> list[tuple[str, str]]:
    """Learn `count` byte-level BPE merges from the corpus, ties broken by the pair itself."""
    byte_map = bytes_to_unicode()
    # Qwen2's pre-tokenizer attaches a leading space to the following word, so the words here do too.
    words = Counter(
        "".join(byte_map[b] for b in piece.encode("utf-8"))
        for piece in re.findall(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+", corpus)
    )
    splits = {word: list(word) for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, freq in words.items():
            symbols = splits[word]
            for left, right in itertools.pairwise(symbols):
                pairs[left, right] += freq
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in splits.items():
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    return merges


def build_vocab() -> tuple[list[str], list[int], list[str]]:
    """Return tokens, token types and merges: 256 byte tokens, learned merges, then Qwen's specials."""
    tokens = [bytes_to_unicode()[byte] for byte in range(256)]
    types = [int(TokenType.NORMAL)] * 256
    merges = learn_merges(MERGE_CORPUS, N_MERGES)
    known = set(tokens)
    for left, right in merges:
        if left + right not in known:
            known.add(left + right)
            tokens.append(left + right)
            types.append(int(TokenType.NORMAL))
    tokens.extend(QWEN_SPECIAL_TOKENS)
    types.extend([int(TokenType.CONTROL)] * len(QWEN_SPECIAL_TOKENS))
    return tokens, types, [f"{left} {right}" for left, right in merges]


def normal(rng: np.random.Generator, *shape: int) -> Array:
    """Return small random weights as float32."""
    return (rng.standard_normal(shape) * WEIGHT_STD).astype(np.float32)


def ones(*shape: int) -> Array:
    """Return a float32 array of ones (norm weights)."""
    return np.ones(shape, dtype=np.float32)


def write_gguf(path: Path, writer: GGUFWriter) -> None:
    """Write header, metadata and tensors in one go."""
    writer.write_header_to_file(path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def text_model_tensors(rng: np.random.Generator, tokens: Sequence[str]) -> dict[str, Array]:
    """Return the text model's tensors (numpy row-major shapes, i.e. (out, in))."""
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD
    n_kv = head_dim * N_HEAD_KV
    embd = normal(rng, n_vocab, N_EMBD)
    # A constant channel in every token embedding survives to the output norm untouched (nothing writes to
    # it below), so the lm head can add a per-token bias although qwen2vl has no output bias tensor.
    embd[:, BIAS_CHANNEL] = 1.0
    tensors: dict[str, Array] = {"token_embd.weight": embd, "output_norm.weight": ones(N_EMBD)}
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        attn_out = normal(rng, N_EMBD, N_EMBD)
        ffn_down = normal(rng, N_EMBD, N_FF)
        attn_out[BIAS_CHANNEL, :] = 0.0
        ffn_down[BIAS_CHANNEL, :] = 0.0
        tensors |= {
            f"{blk}.attn_norm.weight": ones(N_EMBD),
            f"{blk}.attn_q.weight": normal(rng, N_EMBD, N_EMBD),
            f"{blk}.attn_q.bias": normal(rng, N_EMBD),
            f"{blk}.attn_k.weight": normal(rng, n_kv, N_EMBD),
            f"{blk}.attn_k.bias": normal(rng, n_kv),
            f"{blk}.attn_v.weight": normal(rng, n_kv, N_EMBD),
            f"{blk}.attn_v.bias": normal(rng, n_kv),
            f"{blk}.attn_output.weight": attn_out,
            f"{blk}.ffn_norm.weight": ones(N_EMBD),
            f"{blk}.ffn_gate.weight": normal(rng, N_FF, N_EMBD),
            f"{blk}.ffn_up.weight": normal(rng, N_FF, N_EMBD),
            f"{blk}.ffn_down.weight": ffn_down,
        }
    output = normal(rng, n_vocab, N_EMBD)
    output[:, BIAS_CHANNEL] = 0.0
    for token, bias in TOKEN_BIAS.items():
        output[tokens.index(token), BIAS_CHANNEL] = bias
    tensors["output.weight"] = output
    return tensors


def write_text_model(path: Path) -> None:
    """Write the qwen2vl text model with its byte-level BPE tokenizer and chat template."""
    rng = np.random.default_rng(SEED)
    tokens, types, merges = build_vocab()
    writer = GGUFWriter(path, "qwen2vl")
    writer.add_name("tiny-qwen25vl")
    writer.add_description("Random weights for tests; answers are meaningless.")
    # Lets the integration label an entry that runs this model as a test model in the UI.
    writer.add_bool(TEST_MODEL_KEY, True)
    writer.add_context_length(32768)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_sections(list(ROPE_SECTIONS))
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in text_model_tensors(rng, tokens).items():
        writer.add_tensor(name, tensor)
    write_gguf(path, writer)


def mmproj_tensors(rng: np.random.Generator) -> dict[str, NDArray[Any]]:
    """Return the vision tower and merger tensors (numpy row-major shapes, i.e. (out, in))."""
    # Qwen2.5-VL's 3D patch conv is exported as two 2D kernels, one per temporal frame; both are required.
    tensors: dict[str, NDArray[Any]] = {
        "v.patch_embd.weight": normal(rng, V_EMBD, 3, PATCH, PATCH).astype(np.float16),
        "v.patch_embd.weight.1": normal(rng, V_EMBD, 3, PATCH, PATCH).astype(np.float16),
    }
    for i in range(V_LAYER):
        blk = f"v.blk.{i}"
        tensors |= {
            f"{blk}.ln1.weight": ones(V_EMBD),
            f"{blk}.attn_q.weight": normal(rng, V_EMBD, V_EMBD),
            f"{blk}.attn_q.bias": normal(rng, V_EMBD),
            f"{blk}.attn_k.weight": normal(rng, V_EMBD, V_EMBD),
            f"{blk}.attn_k.bias": normal(rng, V_EMBD),
            f"{blk}.attn_v.weight": normal(rng, V_EMBD, V_EMBD),
            f"{blk}.attn_v.bias": normal(rng, V_EMBD),
            f"{blk}.attn_out.weight": normal(rng, V_EMBD, V_EMBD),
            f"{blk}.attn_out.bias": normal(rng, V_EMBD),
            f"{blk}.ln2.weight": ones(V_EMBD),
            f"{blk}.ffn_gate.weight": normal(rng, V_FF, V_EMBD),
            f"{blk}.ffn_gate.bias": normal(rng, V_FF),
            f"{blk}.ffn_up.weight": normal(rng, V_FF, V_EMBD),
            f"{blk}.ffn_up.bias": normal(rng, V_FF),
            f"{blk}.ffn_down.weight": normal(rng, V_EMBD, V_FF),
            f"{blk}.ffn_down.bias": normal(rng, V_EMBD),
        }
    merged = V_EMBD * 4  # the 2x2 spatial merge concatenates four patches
    tensors |= {
        "v.post_ln.weight": ones(V_EMBD),
        "mm.0.weight": normal(rng, merged, merged),
        "mm.0.bias": normal(rng, merged),
        "mm.2.weight": normal(rng, N_EMBD, merged),
        "mm.2.bias": normal(rng, N_EMBD),
    }
    return tensors


def write_mmproj(path: Path) -> None:
    """Write the clip vision projector with the qwen2.5vl_merger projector type."""
    rng = np.random.default_rng(SEED + 1)
    writer = GGUFWriter(path, "clip")
    writer.add_name("tiny-qwen25vl-mmproj")
    writer.add_description("Random weights for tests; answers are meaningless.")
    writer.add_bool(TEST_MODEL_KEY, True)
    writer.add_file_type(1)  # mostly F16 is what real mmproj files report; harmless here
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type("qwen2.5vl_merger")
    writer.add_vision_projection_dim(N_EMBD)
    writer.add_vision_image_size(560)
    writer.add_vision_patch_size(PATCH)
    writer.add_vision_embedding_length(V_EMBD)
    writer.add_vision_feed_forward_length(V_FF)
    writer.add_vision_block_count(V_LAYER)
    writer.add_vision_head_count(V_HEAD)
    writer.add_vision_attention_layernorm_eps(1e-6)
    writer.add_vision_image_mean([0.48145466, 0.4578275, 0.40821073])
    writer.add_vision_image_std([0.26862954, 0.26130258, 0.27577711])
    writer.add_vision_use_silu(True)
    writer.add_vision_spatial_merge_size(2)
    # Every second block attends globally, the others in windows, as in the real 2.5 tower.
    writer.add_vision_n_wa_pattern(2)
    for name, tensor in mmproj_tensors(rng).items():
        raw_dtype = GGMLQuantizationType.F16 if tensor.dtype == np.float16 else None
        writer.add_tensor(name, tensor, raw_dtype=raw_dtype)
    write_gguf(path, writer)


def sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_fixtures(out: Path) -> list[Path]:
    """Write the pair and a sha256sum-compatible SHA256SUMS into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    model, mmproj = out / MODEL_NAME, out / MMPROJ_NAME
    write_text_model(model)
    write_mmproj(mmproj)
    sums = "".join(f"{sha256(path)}  {path.name}\n" for path in (model, mmproj))
    (out / SUMS_NAME).write_text(sums, encoding="ascii")
    return [model, mmproj, out / SUMS_NAME]


def check(committed: Path) -> list[str]:
    """Regenerate into a temporary directory and return the differences from the committed files."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tiny-vlm-") as tmp:
        for fresh in write_fixtures(Path(tmp)):
            old = committed / fresh.name
            if not old.is_file():
                problems.append(f"{old} is missing")
            elif old.read_bytes() != fresh.read_bytes():
                problems.append(f"{old} differs from a fresh build")
    sums = committed / SUMS_NAME
    if sums.is_file():
        for line in sums.read_text(encoding="ascii").splitlines():
            digest, _, name = line.partition("  ")
            target = committed / name
            if target.is_file() and sha256(target) != digest:
                problems.append(f"{target} does not match {SUMS_NAME}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Write the fixtures, or with --check verify that the committed ones are reproducible."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=FIXTURES, help="output directory (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare a fresh build with the files in --out")
    args = parser.parse_args(argv)
    # The gguf writer logs every step at INFO; keep the script quiet unless something goes wrong.
    logging.getLogger("gguf").setLevel(logging.WARNING)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(f"make_tiny_vlm: {problem}", file=sys.stderr)
        if problems:
            print("make_tiny_vlm: run scripts/make_tiny_vlm.py to regenerate the fixtures", file=sys.stderr)
            return 1
        print(f"make_tiny_vlm: {args.out} is up to date")
        return 0
    for path in write_fixtures(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
