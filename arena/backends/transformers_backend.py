"""Batched generation with transformers: left-padded batches, CPU (float32) or GPU (bfloat16),
optionally 4-bit (bitsandbytes NF4/FP4 with double quantization, as QLoRA) or int8, with a LoRA adapter via peft."""

from __future__ import annotations

import time
from typing import Any

from arena.backends.base import GenerateParams, Request, Result
from arena.models import ModelSpec, is_low_bit
from arena.prompting import cut_at_turn_end, render, resolve_format
from foundations.errors import UserError, loading_model
from trainer.bnb_cpu import paths, settle_for_inference


def load_model(spec: ModelSpec, device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for `spec`, in eval mode, tokenizer padding on the left.

    Errors name what to fix: a missing base, or an adapter whose shapes or modules do not fit it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if is_low_bit(spec.quantization):
        return _low_bit(spec, device, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.quantization:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True) if spec.quantization == "int8" else (
            BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=spec.quantization, bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=dtype,
            )
        )  # fmt: skip
        kwargs["device_map"] = {"": device}
    with loading_model(spec.base_model, f"the base model of {spec.name!r}"):
        tokenizer = AutoTokenizer.from_pretrained(spec.base_model, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(spec.base_model, **kwargs)
    if not spec.quantization:
        model.to(device)
    if spec.adapter:
        model = _with_adapter(model, spec)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    if spec.quantization:
        settle_for_inference(model)  # the same 4-bit CPU path for every call, whatever ran before
    return model, tokenizer


def _low_bit(spec: ModelSpec, device: str, dtype: Any) -> tuple[Any, Any]:
    """A group-wise INT model from `guanaco merge` (trainer/qalora_format.py), weights held as codes."""
    from transformers import AutoTokenizer

    from trainer.qalora_format import FormatError, load_quantized

    try:
        model = load_quantized(spec.base_model, dtype=dtype).to(device)
        tokenizer = AutoTokenizer.from_pretrained(spec.base_model, padding_side="left")
    except (FormatError, OSError) as err:
        raise UserError(f"cannot load low-bit model {spec.base_model!r} for {spec.name!r}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _with_adapter(model: Any, spec: ModelSpec) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, spec.adapter, is_trainable=False)
    except (RuntimeError, ValueError, KeyError) as err:
        raise UserError(
            f"adapter {spec.adapter!r} does not fit base model {spec.base_model!r} (contestant {spec.name!r}): "
            f"{str(err).strip()[:400]}. Register it with the base it was trained on."
        ) from err


def _stop_criteria(tokenizer: Any, stop: list[str]) -> Any:
    """Stop strings, matched on tokens; built once per model since it scans the whole vocabulary."""
    if not stop:
        return None
    from transformers import StoppingCriteriaList
    from transformers.generation.stopping_criteria import StopStringCriteria

    return StoppingCriteriaList([StopStringCriteria(tokenizer, stop)])


class TransformersBackend:
    """One model loaded once; `generate` answers a batch of requests in one left-padded batch."""

    name = "transformers"

    def __init__(self, spec: ModelSpec, params: GenerateParams, prompt_format: str = "auto",
                 device: str | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.params = params
        self.model, self.tokenizer = load_model(spec, device)
        self.prompt_format = resolve_format(prompt_format, self.tokenizer)
        self.stop = [s for s in params.stop if s]
        self.stopping = _stop_criteria(self.tokenizer, self.stop)

    def identity(self) -> dict[str, Any]:
        """What produced the answers; for a 4-bit model, also how many layers took each bitsandbytes
        path (the packed CPU path computes in bfloat16, so its answers can differ)."""
        identity = {**self.spec.identity(), "engine": "transformers", "prompt_format": self.prompt_format,
                    "dtype": str(self.model.dtype), "device": str(self.model.device)}  # fmt: skip
        if self.spec.quantization:
            identity["four_bit_paths"] = paths(self.model)
        return identity

    def sampling(self) -> dict[str, Any]:
        return self.params.sampling()

    def generate(self, requests: list[Request]) -> list[Result]:
        import torch

        prompts = [render(r.messages, self.prompt_format, self.tokenizer) for r in requests]
        # Chat templates already start with their special tokens; plain formats get the tokenizer's.
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True,
                               add_special_tokens=self.prompt_format != "chat").to(self.model.device)  # fmt: skip
        sampling = self.params.temperature > 0
        options: dict[str, Any] = {"do_sample": sampling, "max_new_tokens": self.params.max_new_tokens,
                                   "pad_token_id": self.tokenizer.pad_token_id}  # fmt: skip
        if sampling:
            options.update(temperature=self.params.temperature, top_p=self.params.top_p, top_k=0)
        if self.stopping is not None:
            options["stopping_criteria"] = self.stopping
        start = time.perf_counter()
        with torch.inference_mode():
            torch.manual_seed(self.params.seed)
            out = self.model.generate(**batch, **options)
        seconds = (time.perf_counter() - start) / len(requests)
        width = batch["input_ids"].shape[1]
        results = []
        for prompt, mask, row in zip(prompts, batch["attention_mask"], out[:, width:], strict=True):
            tokens = self._answer_length(row.tolist())
            raw = self.tokenizer.decode(row[:tokens], skip_special_tokens=True)
            results.append(Result(text=cut_at_turn_end(raw, self.stop), raw=raw, prompt_sent=prompt,
                                  prompt_tokens=int(mask.sum()), completion_tokens=tokens,
                                  seconds=seconds))  # fmt: skip
        return results

    def _answer_length(self, ids: list[int]) -> int:
        """Tokens generated for one row: through its end token, without the padding after a stop."""
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        for i, token in enumerate(ids):
            if token in eos:
                return i + 1
            if token == self.tokenizer.pad_token_id:
                return i
        return len(ids)

    def close(self) -> None:
        import gc

        import torch

        del self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
