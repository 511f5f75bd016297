"""Provides prompt rendering: conversation messages → token ids, through the model's own chat template."""

from __future__ import annotations

from typing import Any

from ..requests import ChatRequest, Message


def template_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def render_prompt(tokenizer: Any, request: ChatRequest) -> list[int]:
    """Tokens of the whole conversation, ready for generation.

    Rendered as text first and encoded without extra special tokens, because tokenizers disagree on what
    `apply_chat_template(tokenize=True)` returns, and the template already writes BOS where the model wants it.
    """
    messages = template_messages(request.messages)
    if getattr(tokenizer, "chat_template", None):
        if request.continue_last:
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False, continue_final_message=True
            )
        else:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        # No template: a plain transcript is the most honest fallback for a base model.
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
        if not request.continue_last:
            text += "assistant: "
    return list(tokenizer.encode(text, add_special_tokens=False))
