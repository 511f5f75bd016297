"""Writes messages in a loop and reports each one after `add_message` returned; the test kills it with -9.

Usage: python durability_writer.py DATA_DIR IMAGE
Prints "conversation <id>" once, then "saved <message id> <n>" after every write has returned.
"""

import sys
from pathlib import Path

from mlxchat.store import History

data_dir, image = Path(sys.argv[1]), Path(sys.argv[2])
history = History(data_dir)
conversation = history.create_conversation("durability")
print("conversation", conversation.id, flush=True)
n = 0
while True:
    images = [image] if n % 7 == 0 else []
    message = history.add_message(conversation.id, "user" if n % 2 else "assistant", f"message {n} " * 20, images=images)
    print("saved", message.id, n, flush=True)
    n += 1
