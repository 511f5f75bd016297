"""Export keeps a reasoning model's thinking apart: a collapsed <details> block before the answer in Markdown
(fenced, so nothing in it is read as markup), and a `thinking` field in JSON."""

from __future__ import annotations

import json

from mlxchat.store import to_json, to_markdown


def test_thinking_is_a_collapsed_block_before_the_answer(history):
    conversation = history.create_conversation("Capitals")
    history.add_message(conversation.id, "user", "Capital of France?")
    history.add_message(conversation.id, "assistant", "Paris.", thinking="<script>x</script> France → Paris")
    history.add_message(conversation.id, "assistant", "No thinking here.")
    stored = history.get_conversation(conversation.id)
    markdown = to_markdown(stored)
    block = "<details>\n<summary>Thinking</summary>\n\n```markdown\n<script>x</script> France → Paris\n```\n\n</details>"
    assert block in markdown
    assert markdown.index(block) < markdown.index("Paris.\n```")
    assert markdown.count("<details>") == 1, "an answer without thinking gets no block"
    messages = json.loads(to_json(stored))["messages"]
    assert [m["thinking"] for m in messages] == ["", "<script>x</script> France → Paris", ""]
