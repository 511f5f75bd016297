"""Provides `prepare_lexer`: Pygments' one-time setup for code fences, paid off the UI thread (by `AnswerWarmup`).

The first line of a language's first fence used to pay Pygments' setup on the UI thread, in the middle of a
streaming answer (BENCHMARKS.md, issue 11): 23–33 ms thread CPU for Python. Profiled, it is all the lexer class's
first instantiation: `RegexLexerMeta.__call__` compiles the class's token table (about 110 regular expressions for
Python, `re` compiling and `regexopt` building word lists), plus importing its module (`pygments.lexers.python`,
`pygments.unistring`: 2 ms). Nothing else is first-time work: Textual's highlight theme is a table of style strings
(no Pygments style or formatter is involved), and the first row's render costs 0.4 ms more than the next one's. A
fence language Pygments does not know has a first-time cost of its own: the lookup falls through to the plug-in
lexers, and the first scan of the installed packages' entry points (`importlib.metadata`, cached after) takes 15–20 ms.

`AnswerWarmup` (ui/warmup.py) pays this on a thread of its own for the languages answers use most, Python first, once the model has
loaded: the engine is idle then and the user is still to press Enter (a prompt sent during the load is refused), so
it delays neither the first frame nor the load (started after the first frame, it competed with the engine's
`import mlx_lm` for the GIL: BENCHMARKS.md). `prepare_lexer` is the one place a lexer is first built, whichever
thread gets there first.

Thread safety. What the setup fills, and why building it on another thread is safe:

- module imports (`pygments.lexers.<module>`): guarded by the import system's per-module locks; a thread that
  needs a module another is importing waits for it, and gets the one module object;
- `pygments.lexers._lexer_cache` (lexer name -> class): a dict filled by single assignments of the same class;
- `re`'s compile cache: written to be shared by threads (a lost eviction race only evicts nothing);
- `pygments.plugin.iter_entry_points`: `functools.cache`, whose table is thread-safe (at worst computed twice);
- a lexer class's token table (`cls._tokens`, `_all_tokens`, `_tmpname`): **not** safe to build twice at once.
  `RegexLexerMeta.__call__` resets `_tmpname` and `_all_tokens` before building, and names combined states with the
  counter, so a second thread starting the same class's build can make the first reuse a state name and keep a
  wrong table for the life of the process. So a named language's first build runs under `_SETUP_LOCK`
  (`prepare_lexer`, called by `highlight_guarded` before Textual's highlight); once built, a table is only read.

A thread that needs a language while the warm-up builds another waits for that one build (a few ms, 30 at most), and
while it waits it does not hold the GIL. Two first builds stay outside the lock, as they were before: a fence without
a language, whose lexer Pygments guesses (the guess imports every lexer module the first time, 230 ms, and then costs
4–16 ms for 100–500 lines: holding the lock for it would let it stall the UI thread), and lexers that tokenize
embedded code with another lexer (Markdown's code blocks, HTML's scripts). Both race only with a build of the same
class at the same moment, and the commonest classes are built by the warm-up before any answer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.content import Content

WARM_LANGUAGES = (
    "python", "py",
    "bash", "sh", "shell", "console",
    "json",
    "javascript", "js", "typescript", "ts",
    "rust", "rs",
    "c", "cpp", "c++",
    "go",
    "yaml", "yml",
    "toml",
    "markdown", "md",
    "text",
    "plaintext",  # not a Pygments name: its first miss scans the plug-in entry points, cached after
)  # fmt: skip
"""The fence languages prepared at start, the commonest first (aliases of a prepared class cost a lookup)."""

_SETUP_LOCK = threading.Lock()
_prepared: set[str] = set()


def prepare_lexer(language: str) -> None:
    """Build `language`'s lexer class (import its module, compile its token table) unless it is built already.

    The check is a set lookup without a lock; the first time, the build holds `_SETUP_LOCK` (module docstring)."""
    key = language.lower()
    if not key or key in _prepared:
        return
    with _SETUP_LOCK:
        if key in _prepared:
            return
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound

        try:
            get_lexer_by_name(key)
        except ClassNotFound:
            pass  # Textual highlights it as "text"; the miss filled the entry-point cache
        _prepared.add(key)


def fence_language(info: str) -> str:
    """The language of a fence whose info string is `info`: its first word (CommonMark), "" for none. Textual's fence
    looks the whole info string up, so "``` python" or "```python title=add.py" found no lexer and drew plain
    once closed, though the code view streamed it coloured (it takes the first word)."""
    words = info.split(maxsplit=1)
    return words[0] if words else ""


def highlight_guarded(code: str, language: str, ansi: bool, dark: bool) -> Content:
    """Textual's fence highlight (`MarkdownFence.highlight`) in the language `fence_language` finds in `language`
    (an info string), that language's lexer built first, under the lock."""
    from textual.widgets._markdown import MarkdownFence

    language = fence_language(language)
    prepare_lexer(language)
    return MarkdownFence.highlight(code, language, ansi=ansi, dark=dark)
