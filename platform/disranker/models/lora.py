"""LoRA adapters for the teacher (``peft``): low-rank updates on the decoder's projections, the ``score`` head
trained in full, and an export that merges the adapters so the folder is an ordinary ``transformers`` model.

Labeling (transformers and vLLM backends), the comparison and the next stage (SFT from a CPT folder) load that
folder unchanged: none of them needs peft or knows an adapter was used.
"""

from __future__ import annotations

import copy
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


def exportable(module):
    """What to ``save_pretrained``: a peft model's adapters merged into a copy of it (the training model keeps its
    adapters: the export runs at every kept epoch), any other module as it is."""
    if not hasattr(module, "merge_and_unload"):
        return module
    return copy.deepcopy(module).merge_and_unload()


def parameter_counts(module) -> dict[str, int]:
    return {
        "trainable_params": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in module.parameters()),
    }
