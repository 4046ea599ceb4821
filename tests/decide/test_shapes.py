from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.decide.shapes import PRESETS, load_hf_config, preset
from probe.errors import InputError

REQUIRED = {
    "llama3.2-1b",
    "llama-3-8b",
    "llama-3-70b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "mistral-7b",
    "mixtral-8x7b",
}


def test_required_presets_and_published_shapes() -> None:
    assert set(PRESETS) >= REQUIRED
    assert (preset("llama-3-70b").hidden_size, preset("llama-3-70b").num_hidden_layers) == (
        8192,
        80,
    )
    assert (preset("qwen2.5-7b").hidden_size, preset("qwen2.5-7b").num_hidden_layers) == (3584, 28)
    assert preset("llama3.2-1b").hidden_size == 2048
    assert preset("LLAMA_3_8B") is preset("llama-3-8b")


def test_moe_note_only_for_mixtral() -> None:
    assert preset("mixtral-8x7b").note is not None
    assert preset("mistral-7b").note is None


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="llama-3-8b"):
        preset("gpt-5")


def test_hf_config(tmp_path: Path) -> None:
    cfg = {
        "_name_or_path": "org/model",
        "hidden_size": 5120,
        "num_hidden_layers": 40,
        "num_attention_heads": 40,
        "vocab_size": 32000,
        "intermediate_size": 13824,
    }
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    shape = load_hf_config(p)
    assert (shape.name, shape.hidden_size, shape.num_key_value_heads) == ("org/model", 5120, 40)


def test_hf_config_nested_text_config(tmp_path: Path) -> None:
    inner = {
        "hidden_size": 2560,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "vocab_size": 262208,
        "intermediate_size": 10240,
    }
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"architectures": ["X"], "text_config": inner}))
    assert load_hf_config(p).num_hidden_layers == 34


def test_hf_config_errors(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"hidden_size": 64}))  # the layer count is needed, the rest is not
    with pytest.raises(InputError, match=r"config\.json: missing key 'num_hidden_layers'"):
        load_hf_config(p)
    p.write_text("{\n  nope")
    with pytest.raises(InputError, match=r"config\.json:2: not JSON"):
        load_hf_config(p)


@pytest.mark.parametrize(
    "cfg",
    [
        {"hidden_size": 768, "num_hidden_layers": 12},  # Hugging Face names, nothing else
        {"n_embd": 768, "n_layer": 12},  # GPT-2
        {"d_model": 768, "num_layers": 12},  # T5
        {"dim": 768, "n_layers": 12, "n_heads": 12},  # Llama reference
    ],
)
def test_hf_config_needs_only_hidden_size_and_layers(tmp_path: Path, cfg: dict[str, int]) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    shape = load_hf_config(p)
    assert (shape.hidden_size, shape.num_hidden_layers) == (768, 12)
    assert shape.vocab_size is None and shape.note is None
