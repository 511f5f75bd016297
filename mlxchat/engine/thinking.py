"""Provides the split of a reasoning model's output into its thinking and its answer, without MLX.

Reasoning models (Qwen3, DeepSeek-R1 distills, gpt-oss, Gemma 4, GLM) write their thinking first, between markers
their chat template and tokenizer define, and then the answer. The engine shows the two apart: thinking goes out
as `ThinkingDelta`, the answer as `TextDelta`, and the answer text never holds a marker.

A `ThinkingFormat` names a model's markers; `detect_thinking_format` finds it from the tokenizer and chat
template (mlx-lm's tokenizer wrapper already knows the `<think>`-style tags and Gemma's thought channel; gpt-oss's
harmony channels are recognised from its special tokens). A model without one works exactly as before.

`ThinkingSplitter` reads text as it streams, so a marker split over several tokens (or several server chunks) is
still recognised. Its rules, chosen so a marker the model merely *mentions* never swallows an answer:

- thinking can open only before the answer has said anything (leading whitespace aside), also when the answer's
  first words and the marker arrive in one piece;
- the end marker ends thinking only while thinking; in an answer it is ordinary text (an unbalanced `</think>`);
- whitespace right after a marker is dropped (templates put newlines around the tags).

The splitter also runs inside the local engine's thinking-budget processor, fed the same tokens one step ahead,
so both agree on when thinking began and ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .requests import ChatRequest

THINK_TAGS = ("<think>", "</think>")




@dataclass(frozen=True)
class ThinkingFormat:
    """How one model marks its thinking in the text it generates.

    `opens` are texts that start thinking, `close` the one that ends it, `drops` structural texts that carry no
    words (gpt-oss's message headers) and are removed wherever they appear. `force_close` is what the engine
    makes the model write when a thinking budget runs out: the end marker, plus whatever header leads into the
    answer. `switch` is the chat-template variable that turns thinking off (`enable_thinking`), or None when the
    template has none (the engine then ends thinking at once instead: a budget of 0).
    """

    name: str
    opens: tuple[str, ...]
    close: str
    drops: tuple[str, ...] = ()
    force_close: str = ""
    switch: str | None = None

    def starts_thinking(self, generation_prompt: str) -> bool:
        """True when the template's generation prompt already opened thinking (Qwen3-thinking, DeepSeek-R1), so
        the model's first token is thinking although it never writes the opening marker itself."""
        opened = max((generation_prompt.rfind(marker) for marker in self.opens), default=-1)
        return opened >= 0 and opened > generation_prompt.rfind(self.close)

    def resumed(self, generation_prompt: str, thought: str) -> str:
        """What follows the generation prompt so that the model goes on with `thought`: the opening marker (unless
        the template opened thinking itself) and the thinking so far."""
        return ("" if self.starts_thinking(generation_prompt) else self.opens[0]) + thought


TAGGED_THINKING = ThinkingFormat(
    name="<think> tags", opens=(THINK_TAGS[0],), close=THINK_TAGS[1], force_close=THINK_TAGS[1]
)
"""The `<think>` tags of Qwen3, DeepSeek-R1 and most open reasoning models: what a server that does not parse
reasoning itself (llama.cpp's `--reasoning-format none`, an mlx_lm.server without a reasoning parser) leaves in the
answer text, where the remote engine splits it off."""


HARMONY_TOKENS = ("<|start|>", "<|channel|>", "<|message|>", "<|end|>")


def harmony_format(switch: str | None = None) -> ThinkingFormat:
    """gpt-oss's harmony channels: thinking is the `analysis` channel, the answer the `final` one.

    The model writes `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final<|message|>…`.
    gpt-oss cannot switch its reasoning off in its template (only `reasoning_effort`), so `switch` is None.
    """
    return ThinkingFormat(
        name="gpt-oss analysis channel",
        opens=("<|channel|>analysis<|message|>",),
        close="<|end|>",
        drops=("<|start|>assistant", "<|channel|>final<|message|>"),
        force_close="<|end|><|start|>assistant<|channel|>final<|message|>",
        switch=switch,
    )


def detect_thinking_format(tokenizer: Any) -> ThinkingFormat | None:
    """The thinking format of a loaded model's tokenizer (an mlx-lm `TokenizerWrapper`), or None.

    Harmony is checked first: its vocabulary has no `<think>` tag, and its channel tokens differ from Gemma's
    (`<|channel>` / `<channel|>`), which mlx-lm already reports through `think_start` / `think_end`.
    """
    template = getattr(tokenizer, "chat_template", None) or ""
    switch = "enable_thinking" if "enable_thinking" in template else None
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, TypeError, NotImplementedError):  # a tokenizer that cannot list its vocabulary
        vocab = {}
    if all(token in vocab for token in HARMONY_TOKENS):
        return harmony_format()
    start, end = getattr(tokenizer, "think_start", None), getattr(tokenizer, "think_end", None)
    if not start or not end:
        return None
    name = "Gemma thought channel" if start.startswith("<|channel>") else f"{start} tags"
    return ThinkingFormat(name=name, opens=(start,), close=end, force_close=end, switch=switch)


class ThinkingSplitter:
    """Splits streamed text into (is_thinking, text) pieces by a `ThinkingFormat`; see the module's rules.

    Text that may be the start of a marker is held back until the next text decides; `finish` hands out what is
    still held. `thinking` is the current state, `cut_by_budget` is set by the budget processor when it forced
    the end of thinking.
    """

    def __init__(self, format: ThinkingFormat, thinking: bool = False, *, trim_start: bool = True) -> None:
        """`trim_start=False` keeps leading whitespace of an answer that opened no marker (a remote model that may
        not think at all); whitespace right after a marker is dropped either way."""
        self.format = format
        self.thinking = thinking
        self.cut_by_budget = False
        self._answer_started = False
        self._held = ""
        self._strip_leading = trim_start

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """The pieces `text` completes, in order. Marker texts themselves never appear in a piece."""
        pieces: list[tuple[bool, str]] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            found = self._first_marker(buffer)
            if found is None:
                keep = self._partial_marker_length(buffer)
                self._emit(pieces, buffer[: len(buffer) - keep])
                self._held = buffer[len(buffer) - keep :]
                break
            at, marker, action = found
            self._emit(pieces, buffer[:at])
            if action == "open" and self._answer_started:  # the answer began in front of it: a marker mentioned
                self._emit(pieces, marker)
            elif action == "open":
                self.thinking, self._strip_leading = True, True
            elif action == "close":
                self.thinking, self._strip_leading = False, True
            buffer = buffer[at + len(marker) :]
        return pieces

    @property
    def holding(self) -> bool:
        """True while text is held back because it may be the start of a marker."""
        return bool(self._held)

    def finish(self) -> list[tuple[bool, str]]:
        """What is still held back (a stream that ended inside a would-be marker), as plain text."""
        pieces: list[tuple[bool, str]] = []
        held, self._held = self._held, ""
        self._emit(pieces, held)
        return pieces

    def _active_markers(self) -> list[tuple[str, str]]:
        markers = [(text, "drop") for text in self.format.drops]
        if self.thinking:
            markers.append((self.format.close, "close"))
        elif not self._answer_started:
            markers += [(text, "open") for text in self.format.opens]
        return markers

    def _first_marker(self, buffer: str) -> tuple[int, str, str] | None:
        best = None
        for marker, action in self._active_markers():
            at = buffer.find(marker)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, marker, action)
        return best

    def _partial_marker_length(self, buffer: str) -> int:
        """Length of the longest end of `buffer` that is a proper start of an active marker."""
        longest = 0
        for marker, _ in self._active_markers():
            for size in range(min(len(marker) - 1, len(buffer)), longest, -1):
                if marker.startswith(buffer[-size:]):
                    longest = size
                    break
        return longest

    def _emit(self, pieces: list[tuple[bool, str]], text: str) -> None:
        if self._strip_leading:
            text = text.lstrip()
            if not text:
                return
            self._strip_leading = False
        if not text:
            return
        if not self.thinking and text.strip():
            self._answer_started = True
        if pieces and pieces[-1][0] == self.thinking:
            pieces[-1] = (self.thinking, pieces[-1][1] + text)
        else:
            pieces.append((self.thinking, text))


def resume_applies(request: ChatRequest, resumes_thinking: bool) -> bool:
    """Whether `request`'s `resume_thinking` is thought on from, or the question answered afresh: the one rule,
    which the local engine applies (`local.thinking.settle_resume`) and the chat screen asks before it offers to
    continue a thought.

    A resume applies to a text turn (not a continued answer) on a model that `resumes_thinking` (a local model
    with a thinking format: `ModelInfo.resumes_thinking`), with thinking not switched off. Anywhere else the
    question is answered afresh: a model without a format has no thinking to go on with, a server has no way to
    take it, a continued answer is already past its thinking, thinking switched off must not file the answer as
    thinking, and the image route builds its prompt through mlx-vlm without the old thought (resuming only half
    of it there started the splitter thinking and took the old thought off the budget)."""
    return resumes_thinking and not request.continue_last and not request.has_images and request.thinking is not False
