"""Provides the vision route: loading an mlx-vlm model, and answering a turn that carries images.

A vision model serves two routes from one set of weights. Turns with images run here, through mlx-vlm's own
`generate_step` (vision tower → image features merged into the prompt → language model), because only mlx-vlm
knows each architecture's image plumbing (tiles, pixel masks, multimodal rotary positions). Text-only turns go
to mlx-lm's route (`generation.run_text_turn`) through `LanguageModelAdapter`, which makes the VLM's language
model look like an mlx-lm model without copying a weight. Both routes end in `generation.decode`, so batching,
stats, cancel between tokens and stop/length behave the same.

Everything here runs on the engine's owner thread (see `engine.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import mlx.core as mx
import mlx.nn as nn
from mlx_lm import tokenizer_utils

from ..control import CancelledByRequest, RequestControl
from ..errors import RequestError
from ..prompt_fit import must_cut
from ..events import ContextWindow, Finished, PrefillProgress, Started, Usage
from .generation import Emit, TurnClock, decode, noting_last, peak_memory
from .chat_template import render_prompt, thinking_switch
from .context_fit import fit_messages
from .prompt_cache import ConversationCache, Reuse, kv_group_size
from .thinking import thinking_setup
from ..requests import ChatRequest
from ..vision_inputs import image_paths, template_messages
from .vision_memo import ImageMemo


class LanguageModelAdapter(nn.Module):
    """The VLM's language model seen as an mlx-lm model: called with tokens and a cache, returns logits.

    mlx-vlm language models return an output object (`.logits`, and more), and some keep rotary-position state
    from the last image prompt (Qwen2-VL's `_position_ids`/`_rope_deltas`). The adapter unwraps the logits and
    clears that state when a new prompt starts (cache offset 0), so text turns after an image turn get plain
    positions. The language model is a child module, so the parameters are the VLM's own arrays, not copies.
    """

    def __init__(self, language_model: nn.Module) -> None:
        super().__init__()
        self.language_model = language_model

    @property
    def layers(self) -> list:
        model = self.language_model
        return model.layers if hasattr(model, "layers") else model.model.layers

    def make_cache(self) -> list:
        """The language model's own cache layout where it has one (sliding windows), else one KV cache a layer."""
        if hasattr(self.language_model, "make_cache"):
            return self.language_model.make_cache()
        from mlx_lm.models.cache import KVCache

        return [KVCache() for _ in self.layers]

    def __call__(self, inputs: mx.array, cache: list | None = None, input_embeddings: mx.array | None = None):
        if not cache or _cache_offset(cache[0]) == 0:
            for state in ("_position_ids", "_rope_deltas"):
                if getattr(self.language_model, state, None) is not None:
                    setattr(self.language_model, state, None)
        extra = {} if input_embeddings is None else {"inputs_embeds": input_embeddings}
        output = self.language_model(inputs, cache=cache, **extra)
        return getattr(output, "logits", output)


class VisionTokenizer(tokenizer_utils.TokenizerWrapper):
    """mlx-lm's wrapper over a VLM's tokenizer, for the text route.

    VLM chat templates are written for list content (`[{"type": "text", "text": ...}]`); some (SmolVLM's)
    cannot read a plain string and silently render an empty turn. Plain-string messages are passed as one text
    item, which every VLM template reads.
    """

    def apply_chat_template(self, conversation, *args, **kwargs):
        return super().apply_chat_template([_as_parts(m) for m in conversation], *args, **kwargs)


def _as_parts(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}]}
    return message


@dataclass
class VisionParts:
    """A loaded vision model: the mlx-vlm `model` and `processor`, the mlx-lm view of the same weights
    (`text_model`, `tokenizer`) for text-only turns, and the last images read (`memo`)."""

    model: nn.Module
    processor: Any
    text_model: LanguageModelAdapter
    tokenizer: VisionTokenizer
    memo: ImageMemo


def load_vision_model(path: Path | str) -> VisionParts:
    """Load an mlx-vlm model folder (weights evaluated now, on this thread) and build its text-route view.

    The tokenizer is the processor's own (image tokens included) wrapped for mlx-lm, with every end-of-turn id
    the checkpoint names (config `eos_token_id`, the processor's extra ones such as `<end_of_utterance>`).
    """
    from mlx_vlm.utils import load

    path = Path(path)
    model, processor = load(str(path))
    hf_tokenizer = getattr(processor, "tokenizer", processor)
    eos = _eos_token_ids(path, processor, hf_tokenizer)
    tokenizer = VisionTokenizer(hf_tokenizer, _detokenizer_class(processor), eos_token_ids=eos)
    return VisionParts(model, processor, LanguageModelAdapter(model.language_model), tokenizer, ImageMemo(processor))


def _detokenizer_class(processor: Any):
    """mlx-lm's streaming detokenizer of the kind mlx-vlm picked for this tokenizer (BPE, SPM or naive).

    mlx-lm's versions emit each word as soon as its bytes are complete; mlx-vlm's BPE one holds the last word
    until the next space, which `generation.decode` would drop at a stop. Same kind, same output on both routes.
    """
    chosen = getattr(processor, "detokenizer", None)
    kind = getattr(tokenizer_utils, type(chosen).__name__, None)
    if not (isinstance(kind, type) and issubclass(kind, tokenizer_utils.StreamingDetokenizer)):
        return tokenizer_utils.NaiveStreamingDetokenizer
    if kind is tokenizer_utils.SPMStreamingDetokenizer and not getattr(chosen, "trim_space", True):
        return partial(kind, trim_space=False)
    return kind


def _eos_token_ids(path: Path, processor: Any, hf_tokenizer: Any) -> list[int]:
    """Every id that ends a turn: checkpoints spread them over config.json, generation_config.json (merged in
    by `load_config`), the text config and the processor (Idefics3's `<end_of_utterance>`)."""
    from mlx_vlm.utils import load_config

    config = load_config(path)
    ids: list[int] = []
    for source in (
        config.get("eos_token_id"),
        (config.get("generation_config") or {}).get("eos_token_id"),
        (config.get("text_config") or {}).get("eos_token_id"),
        getattr(processor, "additional_eos_token_ids", None),
        hf_tokenizer.eos_token_id,
    ):
        for token_id in source if isinstance(source, (list, tuple)) else [source]:
            if isinstance(token_id, int) and token_id not in ids:
                ids.append(token_id)
    return ids


def run_vision_turn(
    loaded, request: ChatRequest, control: RequestControl, emit: Emit, cache: ConversationCache
) -> Finished:
    """Answer `request` (whose messages carry images) with the loaded vision model.

    Every image is checked first; a bad one raises `RequestError` naming the file before any MLX work. The
    conversation's prompt cache is reused as mlx-vlm's own `PromptCacheState` does it: when the new prompt
    extends what the cache holds and everything after the shared prefix is text (a follow-up question about an
    image already read), only that text is prefilled, and the images are neither encoded nor read again. A
    prompt whose new part holds an image starts from an empty cache.

    Cancel: between decode steps it lands within one token, as on the text route. During prefill it lands
    only between prefill chunks, and the first chunk also runs the vision tower over every image, which
    cannot be stopped inside: on a slow device a cancel there waits until the images are encoded. Models
    whose mlx-vlm implementation disables chunked prefill cannot be stopped before their first token.
    """
    from mlx_vlm.generate import generate_step, generation_stream, wired_limit
    from mlx_lm.sample_utils import make_sampler

    parts: VisionParts = loaded.vision
    request_id = request.request_id
    received = time.perf_counter()  # TTFT counts from here, as on the text route: reading and processing images too
    context_size = loaded.info.context_size
    request, window, inputs = _fit_to_context(loaded, request)
    input_ids = inputs.pop("input_ids")
    pixel_values = inputs.pop("pixel_values", None)
    mask = inputs.pop("attention_mask", None)
    prompt_tokens = int(input_ids.shape[1])
    answer_room = context_size - prompt_tokens
    if request.sampling.max_tokens > answer_room:
        request = replace(request, sampling=replace(request.sampling, max_tokens=answer_room))
    sampling = request.sampling
    if sampling.seed is not None:
        mx.random.seed(sampling.seed)

    full_ids = [int(token) for token in input_ids[0].tolist()]
    route = "vision:" + parts.memo.fingerprint(image_paths(request.messages))
    quantized = _kv_quantization(parts, request.kv_bits)
    reuse = _reuse_prefix(
        parts, cache, request.conversation_id, route, full_ids, input_ids, mask, inputs, request.kv_bits
    )
    cached = reuse.cached_tokens
    if cached:
        input_ids, pixel_values = input_ids[:, cached:], None
    clock = TurnClock(received, prompt_tokens, cached, context_size, peak_memory=peak_memory)
    emit(Started(request_id, prompt_tokens, cached, "vision"))
    emit(ContextWindow(request_id, request.overflow, window.hidden, prompt_tokens, context_size, answer_room))
    emit(PrefillProgress(request_id, cached, prompt_tokens))
    chunk = loaded.chunker.size
    todo = prompt_tokens - cached
    splitter, budget = thinking_setup(
        loaded.thinking, loaded.tokenizer, request, lambda: _generation_prompt(parts, request)
    )

    def after_chunk(done: int, _cache) -> None:
        emit(PrefillProgress(request_id, cached + done, prompt_tokens))
        if control.cancelled:
            raise CancelledByRequest

    generator = generate_step(
        input_ids,
        parts.model,
        pixel_values,
        mask,
        max_tokens=sampling.max_tokens,
        sampler=make_sampler(temp=sampling.temperature, top_p=sampling.top_p),
        logits_processors=[budget] if budget is not None else None,
        prefill_step_size=chunk,
        prompt_cache=reuse.cache,
        prompt_cache_checkpoint=after_chunk,
        prompt_cache_checkpoint_lengths=list(range(chunk, todo - 1, chunk)),
        **quantized,
        **inputs,
    )
    tokens: list[int] = []
    ended_by: list[int] = []  # the last token decode read: at a stop, the end token, which it leaves out
    try:
        with wired_limit(parts.model, [generation_stream]):
            try:
                reason, text, tokens, reasoning = decode(
                    noting_last(ended_by, _segments(generator, loaded.tokenizer)),
                    request=request,
                    control=control,
                    clock=clock,
                    emit=emit,
                    eos_token_ids=loaded.tokenizer.eos_token_ids,
                    on_first_token=lambda: control.enter("generating"),
                    thinking=splitter,
                )
            except CancelledByRequest:
                reason, text, reasoning = "cancelled", "", ""
            mx.synchronize(generation_stream)
    except BaseException:
        cache.invalidate()
        raise
    finally:
        generator.close()
        mx.clear_cache()
    cache.record(full_ids + list(tokens) + (ended_by if reason == "stop" else []))  # as the text route records
    stats = clock.stats(request_id)
    emit(stats)
    usage = Usage(prompt_tokens, cached, clock.generated, clock.reasoning_tokens)
    context_full = reason == "length" and clock.generated >= answer_room
    return Finished(request_id, reason, text, usage, stats=stats, context_full=context_full, reasoning=reasoning)


def _fit_to_context(loaded, request: ChatRequest):
    """The request cut to the context by its overflow policy, its window, and its prepared inputs (token ids,
    pixels). Images count as the tokens the processor makes of them; a message's images leave with it."""
    parts: VisionParts = loaded.vision
    prepared: list[tuple[ChatRequest, dict[str, Any]]] = []  # the last request measured and its inputs

    def measure(candidate: ChatRequest) -> int:
        if not prepared or prepared[-1][0] is not candidate:
            images = parts.memo.load_images(image_paths(candidate.messages))
            prepared[:] = [(candidate, _prepare_inputs(parts, _render_prompt(parts, candidate), images))]
        return int(prepared[-1][1]["input_ids"].shape[1])

    full, per_image = measure(request), 0
    if must_cut(request, full, loaded.info.context_size):
        # Only a prompt that must be cut needs an image's cost, and finding it tokenizes the history again.
        images = sum(len(message.images) for message in request.messages)
        text_only = len(render_prompt(loaded.tokenizer, request))
        per_image = max(0, full - text_only) // max(1, images)
    fitted, window, _length = fit_messages(
        loaded.tokenizer, request, loaded.info.context_size, loaded.info.name, measure, per_image
    )
    return fitted, window, dict(prepared[-1][1])


def _kv_quantization(parts: VisionParts, kv_bits: int | None) -> dict[str, int]:
    """mlx-vlm's arguments for a KV cache quantized to `kv_bits` from the first token (as the text route does),
    in groups that fit the language model's head size; none for full precision, or heads too small to group."""
    if kv_bits is None:
        return {}
    text = getattr(parts.model.config, "text_config", None) or parts.model.config
    head_size = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    group = kv_group_size(int(head_size))
    if group is None:
        return {}
    return {"kv_bits": kv_bits, "kv_group_size": group, "quantized_kv_start": 0}


def _reuse_prefix(
    parts: VisionParts,
    cache: ConversationCache,
    conversation_id: str,
    route: str,
    full_ids: list[int],
    input_ids,
    mask,
    inputs,
    kv_bits: int | None = None,
) -> Reuse:
    """The conversation's cache, holding the prefix of this prompt it can serve, by mlx-vlm's own rules: the part
    still to prefill must be text only (image features are merged in only where the whole image is read), and a
    model with multimodal rotary positions (Qwen-VL) must be able to derive them for the full prompt first."""
    reuse = cache.prepare(conversation_id, full_ids, kv_bits, route=route)
    if reuse.cached_tokens == 0:
        return reuse
    try:
        from mlx_vlm import apc
        from mlx_vlm.generate.dispatch import _prime_cached_prefix_rope_state

        media = apc.multimodal_token_ids_from_config(parts.model.config)
        usable = apc.prefix_leaves_text_only_suffix(full_ids, reuse.cached_tokens, media)
        usable = usable and _prime_cached_prefix_rope_state(parts.model, input_ids, mask, inputs)
    except (ImportError, AttributeError):  # another mlx-vlm: read everything, as before
        usable = False
    return reuse if usable else cache.fresh(conversation_id, kv_bits, route=route)


def _segments(generator, tokenizer) -> Iterator[tuple[str, int]]:
    """(text segment, token) pairs from mlx-vlm's token stream, decoded with the streaming detokenizer."""
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    for token, _logprobs in generator:
        token = int(token)
        detokenizer.add_token(token)
        yield detokenizer.last_segment, token
    detokenizer.finalize()


def _render_prompt(parts: VisionParts, request: ChatRequest, generation: bool = True) -> str:
    """The conversation through the model's chat template, one image placeholder per attached image; with
    `generation=False`, without the text that opens the answer."""
    hf_tokenizer = getattr(parts.processor, "tokenizer", parts.processor)
    template = getattr(parts.processor, "chat_template", None) or getattr(hf_tokenizer, "chat_template", None)
    if not template:
        raise RequestError(
            "This vision model has no chat template (chat_template.json or tokenizer_config.json), so mlxchat "
            "cannot tell where its images go."
        )
    options = (
        {"add_generation_prompt": False, "continue_final_message": True}
        if request.continue_last
        else {"add_generation_prompt": generation}
    )
    messages = template_messages(request.messages)
    return hf_tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, **options, **thinking_switch(request)
    )


def _generation_prompt(parts: VisionParts, request: ChatRequest) -> str:
    """What the template appends to open the answer: whether the model's first token is already thinking (a
    template that opens `<think>` there), as `chat_template.generation_prompt` tells it for the text route."""
    if request.continue_last:
        return ""
    with_prompt, without = _render_prompt(parts, request), _render_prompt(parts, request, generation=False)
    return with_prompt[len(without) :] if with_prompt.startswith(without) else with_prompt[-200:]


def _prepare_inputs(parts: VisionParts, prompt: str, images: list) -> dict[str, Any]:
    """Token ids, pixel values and the model's extra inputs (pixel masks, image grids), as mlx-vlm makes them."""
    from mlx_vlm.utils import prepare_inputs, should_add_special_tokens

    config = parts.model.config
    try:
        return dict(
            prepare_inputs(
                parts.processor,
                images=images,
                prompts=prompt,
                image_token_index=getattr(config, "image_token_index", None),
                add_special_tokens=should_add_special_tokens(config.model_type, parts.processor),
            )
        )
    except ValueError as exc:
        raise RequestError(f"The images could not be prepared for this model: {exc}") from exc


def _cache_offset(entry) -> int:
    offset = getattr(entry, "offset", 0)
    return int(offset) if isinstance(offset, int) else int(mx.max(offset).item())
