"""How far the remote engine's token estimate (characters, no tokenizer) is from a real tokenizer's count.

Prints, per kind of text, the real prompt tokens (the chat template applied, as a server counts them), the
uncalibrated estimate, and the estimate after calibrating on another text of the same kind; writes JSON to the
path given. Usage: python benchmarks/remote_token_estimate.py OUT.json [MODEL_FOLDER] (default: the demo model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transformers import AutoTokenizer

from mlxchat.engine.remote.token_estimate import TokenEstimate
from mlxchat.engine.requests import ChatRequest, Message

ROOT = Path(__file__).resolve().parents[1]


def conversation(text: str, pieces: int = 6) -> ChatRequest:
    size = len(text) // pieces
    parts = [text[i * size : (i + 1) * size] for i in range(pieces)]
    return ChatRequest(tuple(Message("user" if i % 2 == 0 else "assistant", p) for i, p in enumerate(parts)))


def real_tokens(tokenizer, request: ChatRequest) -> int:
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return len(tokenizer.encode(text, add_special_tokens=False))


def main() -> None:
    out = Path(sys.argv[1])
    if len(sys.argv) > 2:
        folder = Path(sys.argv[2])
    else:
        from mlxchat.models.demo import ensure_demo_model

        folder = ensure_demo_model()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    readme = (ROOT / "README.md").read_text()
    code = (ROOT / "mlxchat/engine/remote/engine.py").read_text()
    cjk = "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。" * 60
    kinds = {"English prose (README)": readme, "Python (engine.py)": code, "Japanese": cjk}
    results = {}
    for name, text in kinds.items():
        half = len(text) // 2
        calibrate_on, measure_on = conversation(text[:half][:12000]), conversation(text[half:][:12000])
        fresh = TokenEstimate()
        calibrated = TokenEstimate()
        calibrated.calibrate(calibrate_on, real_tokens(tokenizer, calibrate_on))
        real = real_tokens(tokenizer, measure_on)
        row = {
            "real": real,
            "estimate": fresh.prompt_tokens(measure_on),
            "calibrated": calibrated.prompt_tokens(measure_on),
            "calibrated_chars_per_token": round(calibrated.chars_per_token, 2),
        }
        row["estimate_over_real"] = round(row["estimate"] / real, 3)
        row["calibrated_over_real"] = round(row["calibrated"] / real, 3)
        results[name] = row
        print(f"{name:24} real {real:6d}  estimate {row['estimate']:6d} ({row['estimate_over_real']:.2f}x)  "
              f"calibrated {row['calibrated']:6d} ({row['calibrated_over_real']:.2f}x, "
              f"{row['calibrated_chars_per_token']} chars/token)")
    out.write_text(json.dumps({"tokenizer": folder.name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
