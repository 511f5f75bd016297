"""A chat that saves as the app will: the real engine answers, the history store keeps each message once it ends.

Usage: python stress_writer.py MODEL DATA_DIR
Prints "conversation <id>"; "saved <message id> <sha1 of its text> <status>" after each `add_message` returned;
"streaming <request id>" at the first text of each answer. It chats until it is killed (the test sends SIGKILL).
"""

import hashlib
import queue
import random
import sys
from pathlib import Path

from mlxchat.engine import (
    ChatRequest,
    Engine,
    Finished,
    LoadModel,
    Message,
    SamplingParams,
    TextDelta,
)
from mlxchat.store import History

model, data_dir = sys.argv[1], Path(sys.argv[2])
events: queue.SimpleQueue = queue.SimpleQueue()
engine = Engine(events.put).start()
history = History(data_dir)
rng = random.Random(6)


def wait(request_id: str, on_delta=None) -> Finished:
    while True:
        event = events.get(timeout=120)
        if event.request_id != request_id:
            continue
        if isinstance(event, TextDelta) and on_delta is not None:
            on_delta(event)
        if isinstance(event, Finished):
            return event


def saved(message) -> None:
    digest = hashlib.sha1(message.text.encode()).hexdigest()
    print("saved", message.id, digest, message.status, flush=True)


load = LoadModel(model)
engine.submit(load)
assert wait(load.request_id).reason == "stop"
conversation = history.create_conversation("kill -9 while answering")
print("conversation", conversation.id, flush=True)
messages: list[Message] = []
turn = 0
while True:
    turn += 1
    question = f"Question {turn}: tell me about item {rng.randint(1, 10**6)}."
    saved(history.add_message(conversation.id, "user", question))
    messages.append(Message("user", question))
    request = ChatRequest(
        tuple(messages[-6:]),
        conversation_id=conversation.id,
        sampling=SamplingParams(temperature=0.0, max_tokens=rng.randint(20, 400)),
    )
    assert engine.submit(request) is None
    first = []

    def on_delta(event, first=first, request_id=request.request_id):
        if not first:
            first.append(True)
            print("streaming", request_id, flush=True)

    finished = wait(request.request_id, on_delta)
    status = {"stop": "complete", "length": "complete", "cancelled": "stopped"}.get(finished.reason, "error")
    saved(history.add_message(conversation.id, "assistant", finished.text, status=status, stats=finished.stats))
    messages.append(Message("assistant", finished.text))
