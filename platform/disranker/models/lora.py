"""LoRA adapters for the teacher (``peft``): low-rank updates on the decoder's projections, the ``score`` head
trained in full, and an export that merges the adapters so the folder is an ordinary ``transformers`` model.

Labeling (transformers and vLLM backends), the comparison and the next stage (SFT from a CPT folder) load that
folder unchanged: none of them needs peft or knows an adapter was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from disranker.config import ConfigError

# The attention and MLP projections of Llama-family decoders (SmolLM2, Llama, Qwen2, Mistral).
DECODER_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSection:
    r: int = 16  # rank of each update
    alpha: int = 32  # the update is scaled by alpha / r
    dropout: float = 0.05  # on the adapter's input
    target_modules: list[str] = field(default_factory=lambda: list(DECODER_PROJECTIONS))  # module names to adapt

    def validate(self) -> None:
        if self.r < 1:
            raise ConfigError("'model.lora.r' must be ≥ 1")
        if self.alpha <= 0:
            raise ConfigError("'model.lora.alpha' must be > 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError("'model.lora.dropout' must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError("'model.lora.target_modules' is empty: name the modules to adapt, e.g. q_proj")


def with_lora(model, section: LoraSection, scorer: bool):
    """``model`` with LoRA adapters; only they (and, for a scorer, the whole ``score`` head) require grad."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if scorer else TaskType.CAUSAL_LM,
        r=section.r,
        lora_alpha=section.alpha,
        lora_dropout=section.dropout,
        target_modules=list(section.target_modules),
        modules_to_save=["score"] if scorer else None,
    )
    return get_peft_model(model, config)


def save_merged(module, folder, state_dict: dict | None = None) -> None:
    """Save ``module`` as an ordinary ``transformers`` folder; a peft model with its adapters merged into the weights.

    ``state_dict``: the weights to save when ``module`` does not hold them whole (ZeRO-3 gathers them on rank 0). The
    merge is done on the state dict, W + (alpha / r) · B A for each adapted weight (new tensors for those only), rather
    than by peft's own merge: that needs every weight in the module (not so under ZeRO-3) and either a copy of the
    whole model or a merge and unmerge in place, which moves the frozen base weights by a rounding step at each export
    (7.5e-9 in float32 on the tiny teacher; a whole bf16 step for a bf16 base). The training model keeps its adapters:
    the export runs at every kept epoch."""
    if not hasattr(module, "peft_config"):
        module.save_pretrained(folder, state_dict=state_dict)
        return
    adapter = module.peft_config["default"]
    merged = merge_state_dict(module.state_dict() if state_dict is None else state_dict, adapter.lora_alpha / adapter.r)
    module.get_base_model().save_pretrained(folder, state_dict=merged)


def merge_state_dict(state: dict, scale: float) -> dict:
    """A peft LoRA model's state dict as the plain model's: ``base_layer`` weights plus ``scale`` · B A, the trained
    copy of a ``modules_to_save`` module (the ``score`` head) under the module's own name, adapter tensors dropped."""
    merged = {}
    for key, value in state.items():
        if "lora_" in key or ".original_module." in key:
            continue
        if key.endswith(".base_layer.weight"):
            stem = key.removesuffix(".base_layer.weight")
            down, up = state[f"{stem}.lora_A.default.weight"], state[f"{stem}.lora_B.default.weight"]
            value = (value.float() + scale * (up.float() @ down.float())).to(value.dtype)
        name = key.removeprefix("base_model.model.").replace(".base_layer.", ".")
        merged[name.replace(".modules_to_save.default.", ".")] = value
    return merged


def parameter_counts(module) -> dict[str, int]:
    return {
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in module.parameters()),
    }
