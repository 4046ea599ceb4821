"""Model shapes: the few numbers of a transformer that decide how many bytes cross the network.

Presets copy ``config.json`` of the published checkpoints on the Hugging Face hub; any other model
is read from its own ``config.json`` (``--model-config``). Only the hidden size and the layer count
enter the formulas, so only they are required (under their Hugging Face names or the aliases of
``HIDDEN_KEYS`` and ``LAYER_KEYS``); the rest is optional, kept for later scenarios (KV-cache
transfer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from probe.errors import InputError


@dataclass(frozen=True, slots=True)
class ModelShape:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int | None = None  # None: not in the config (no formula needs it)
    num_key_value_heads: int | None = None
    vocab_size: int | None = None
    intermediate_size: int | None = None
    num_local_experts: int = 1  # > 1: mixture of experts
    num_experts_per_tok: int = 1

    @property
    def note(self) -> str | None:
        """Why the network figures of an MoE model look like those of a dense one."""
        if self.num_local_experts <= 1:
            return None
        return (
            f"MoE ({self.num_local_experts} experts, {self.num_experts_per_tok} per token): "
            "stage-boundary activations and tensor-parallel all-reduces have the dense size "
            "(hidden); expert-parallel all-to-all traffic is not modelled"
        )


# (hidden, layers, heads, kv heads, vocab, intermediate[, experts, experts per token])
PRESETS: dict[str, ModelShape] = {
    s.name: s
    for s in (
        ModelShape("llama3.2-1b", 2048, 16, 32, 8, 128256, 8192),
        ModelShape("llama3.2-3b", 3072, 28, 24, 8, 128256, 8192),
        ModelShape("llama-3-8b", 4096, 32, 32, 8, 128256, 14336),
        ModelShape("llama-3-70b", 8192, 80, 64, 8, 128256, 28672),
        ModelShape("llama-3.1-405b", 16384, 126, 128, 8, 128256, 53248),
        ModelShape("qwen2.5-7b", 3584, 28, 28, 4, 152064, 18944),
        ModelShape("qwen2.5-72b", 8192, 80, 64, 8, 152064, 29568),
        ModelShape("mistral-7b", 4096, 32, 32, 8, 32000, 14336),
        ModelShape("mixtral-8x7b", 4096, 32, 32, 8, 32000, 14336, 8, 2),
    )
}


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


_BY_KEY = {_key(n): s for n, s in PRESETS.items()}


def preset(name: str) -> ModelShape:
    """A preset by name; spelling of separators is free (``llama-3-8b`` = ``llama3_8b``)."""
    shape = _BY_KEY.get(_key(name))
    if shape is None:
        known = ", ".join(PRESETS)
        raise InputError(f"unknown model {name!r}; presets: {known}; or use --model-config")
    return shape


#: Names a config may give the two figures under: Hugging Face's first, then GPT-2 / BLOOM /
#: T5 / Llama-reference spellings.
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "hidden_dim")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def parse_hf_config(doc: object, *, name: str, where: str) -> ModelShape:
    """A shape from a decoded Hugging Face ``config.json`` (nested ``text_config`` understood)."""
    if not isinstance(doc, dict):
        raise InputError("config.json is not a JSON object", where=where)
    fields: dict[str, object] = doc
    text_config = fields.get("text_config")
    if not any(k in fields for k in HIDDEN_KEYS) and isinstance(text_config, dict):
        fields = text_config

    def get(*keys: str) -> int | None:
        key = next((k for k in keys if fields.get(k) is not None), None)
        if key is None:
            return None
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{key} must be a positive integer, got {value!r}", where=where)
        return value

    def need(keys: tuple[str, ...]) -> int:
        value = get(*keys)
        if value is None:
            raise InputError(f"missing key {keys[0]!r} (or {', '.join(keys[1:])})", where=where)
        return value

    hidden, layers = need(HIDDEN_KEYS), need(LAYER_KEYS)
    heads = get("num_attention_heads", "n_head", "num_heads", "n_heads")
    return ModelShape(
        name=name,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=get("num_key_value_heads", "n_kv_heads") or heads,
        vocab_size=get("vocab_size"),
        intermediate_size=get("intermediate_size", "n_inner", "ffn_dim", "d_ff"),
        num_local_experts=get("num_local_experts", "num_experts") or 1,
        num_experts_per_tok=get("num_experts_per_tok") or 1,
    )


def load_hf_config(path: str | Path) -> ModelShape:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read model config: {exc.strerror}", where=str(p)) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", where=f"{p}:{exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", where=str(p)) from exc
    except RecursionError as exc:
        raise InputError("nested too deeply", where=str(p)) from exc
    name = doc.get("_name_or_path") if isinstance(doc, dict) else None
    return parse_hf_config(doc, name=str(name or p.parent.name or p.stem), where=str(p))
