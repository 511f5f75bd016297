"""Provides prompt rendering: conversation messages → token ids, through the model's own chat template."""

from __future__ import annotations

from typing import Any

from ..requests import ChatRequest, Message
from ..documents import message_text


def template_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": message_text(m)} for m in messages]


def render_prompt(tokenizer: Any, request: ChatRequest) -> list[int]:
    """Tokens of the whole conversation, ready for generation.

    Rendered as text first and encoded without extra special tokens, because tokenizers disagree on what
    `apply_chat_template(tokenize=True)` returns, and the template already writes BOS where the model wants it.
    """
    messages = template_messages(request.messages)
    if getattr(tokenizer, "chat_template", None):
        switch = thinking_switch(request)
        if request.continue_last:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False, continue_final_message=True, **switch
            )
        else:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **switch)
            text += resumed_thinking(tokenizer, request)
    else:
        # No template: a plain transcript is the most honest fallback for a base model.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        if not request.continue_last:
            text += "assistant: "
    return list(tokenizer.encode(text, add_special_tokens=False))


def resumed_thinking(tokenizer: Any, request: ChatRequest) -> str:
    """The opened thinking a resumed answer's prompt ends with (`ChatRequest.resume_thinking`), or "" when there is
    none. Whether a resume applies is decided before, once (`local.thinking.settle_resume`)."""
    if not request.resume_thinking:
        return ""
    from ..thinking import detect_thinking_format

    format = detect_thinking_format(tokenizer)
    if format is None:
        raise ValueError("resume_thinking on a model without a thinking format: settle_resume must decide first")
    return format.resumed(generation_prompt(tokenizer, request), request.resume_thinking)


def thinking_switch(request: ChatRequest) -> dict[str, bool]:
    """The template variable that turns a reasoning model's thinking on or off, when the request chose.

    Without a choice mlx-lm's tokenizer wrapper passes `enable_thinking` = "the model has a thinking format";
    templates without the variable ignore it.
    """
    return {} if request.thinking is None else {"enable_thinking": request.thinking}


def generation_prompt(tokenizer: Any, request: ChatRequest) -> str:
    """The text the template appends to open the answer (`<|im_start|>assistant\n`, and for Qwen3-thinking or
    DeepSeek-R1 also `<think>\n`): what tells whether the model's first token is already thinking.

    Only this tail is looked at, so a user who types a marker into a message cannot start thinking mode.
    """
    if request.continue_last or not getattr(tokenizer, "chat_template", None):
        return ""
    messages = template_messages(request.messages)
    switch = thinking_switch(request)
    with_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **switch)
    without = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False, **switch)
    return with_prompt[len(without) :] if with_prompt.startswith(without) else with_prompt[-200:]
