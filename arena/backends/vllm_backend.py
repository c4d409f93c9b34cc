"""vLLM as a backend (the optional `vllm` extra, on a GPU): a base model with LoRA adapters served
through `enable_lora` and a `LoRARequest`, 4-bit through vLLM's bitsandbytes loader."""

from __future__ import annotations

import time
from typing import Any

from arena.backends.base import GenerateParams, Request, Result
from arena.models import ModelSpec, is_low_bit
from arena.prompting import cut_at_turn_end, render, resolve_format
from foundations.errors import UserError


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise UserError(
            "the vllm backend needs the vllm extra: pip install 'guanaco-arena[vllm]' (and a GPU)"
        ) from err
    return vllm


class VLLMBackend:
    """One `vllm.LLM` per contestant; the whole batch goes to vLLM's scheduler at once."""

    name = "vllm"

    def __init__(
        self, spec: ModelSpec, params: GenerateParams, prompt_format: str = "auto", **engine: Any
    ) -> None:
        if is_low_bit(spec.quantization):
            raise UserError(
                f"{spec.name!r} is a group-wise {spec.quantization} model in guanaco's own format, which vLLM "
                "cannot load: generate it with --backend transformers (docs/qalora.md)"
            )
        vllm = _vllm()
        self.spec = spec
        self.params = params
        options: dict[str, Any] = {"model": spec.base_model, "seed": params.seed, "enable_lora": bool(spec.adapter),
                                   "gpu_memory_utilization": 0.85, **engine}  # fmt: skip
        if spec.adapter:
            options.setdefault("max_lora_rank", 64)
        if spec.quantization == "int8":  # vLLM quantizes in flight to 4-bit bitsandbytes only
            raise UserError(
                f"{spec.name}: an int8 contestant generates with --backend transformers, not vllm"
            )
        if spec.quantization:
            options["quantization"] = "bitsandbytes"
        self.llm = vllm.LLM(**options)
        self.tokenizer = self.llm.get_tokenizer()
        self.prompt_format = resolve_format(prompt_format, self.tokenizer)
        self.lora = None
        if spec.adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(spec.name, 1, _local_adapter(spec.adapter))
        self.sampling_params = vllm.SamplingParams(
            temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
            max_tokens=params.max_new_tokens, seed=params.seed, stop=[s for s in params.stop if s],
            include_stop_str_in_output=True,
        )  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return {**self.spec.identity(), "engine": "vllm", "prompt_format": self.prompt_format}

    def sampling(self) -> dict[str, Any]:
        return self.params.sampling()

    def generate(self, requests: list[Request]) -> list[Result]:
        prompts = [render(r.messages, self.prompt_format, self.tokenizer) for r in requests]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, self.sampling_params, lora_request=self.lora, use_tqdm=False)
        seconds = (time.perf_counter() - start) / len(requests)
        results = []
        for prompt, out in zip(prompts, outputs, strict=True):
            raw = out.outputs[0].text
            results.append(Result(text=cut_at_turn_end(raw, self.params.stop), raw=raw, prompt_sent=prompt,
                                  prompt_tokens=len(out.prompt_token_ids),
                                  completion_tokens=len(out.outputs[0].token_ids), seconds=seconds))  # fmt: skip
        return results

    def close(self) -> None:
        import gc

        del self.llm
        gc.collect()


def _local_adapter(adapter: str) -> str:
    """vLLM loads adapters from disk: a hub id is fetched into the Hugging Face cache first."""
    from pathlib import Path

    if Path(adapter).is_dir():
        return adapter
    from huggingface_hub import snapshot_download

    return snapshot_download(adapter)
