"""Exports: Markdown to read, JSON to process; images are referenced by their stored copy."""

from __future__ import annotations

import json

from mlxchat.settings import ChatSettings
from mlxchat.store import export_conversation, suggested_file_name, to_json, to_markdown


def _conversation(history, make_image):
    conversation = history.create_conversation("Capital [of] France", ChatSettings(system_prompt="Be brief.", seed=3))
    history.add_message(conversation.id, "user", "What is the capital of France?", images=[make_image("map.png")])
    history.add_message(conversation.id, "assistant", "Paris is the cap", status="stopped", stats={"decode_tps": 8.0})
    return history.get_conversation(conversation.id)


def test_markdown_has_a_section_per_message_and_links_the_image(history, make_image):
    conversation = _conversation(history, make_image)
    text = to_markdown(conversation)
    stored = conversation.messages[0].attachments[0].path
    assert text.startswith("# Capital [of] France\n")
    assert "seed 3" in text
    assert "## System\n\nBe brief." in text
    assert "## You\n\nWhat is the capital of France?" in text
    assert f"![map.png](<{stored.as_posix()}>)" in text
    assert "## Assistant\n\nParis is the cap\n\n*(stopped before the end)*" in text
    assert stored.is_file()


def test_json_carries_everything_and_references_images_by_file(history, make_image):
    conversation = _conversation(history, make_image)
    document = json.loads(to_json(conversation))
    assert document["format"] == "mlxchat-conversation" and document["version"] == 1
    assert document["settings"]["system_prompt"] == "Be brief."
    user, assistant = document["messages"]
    assert user["attachments"][0]["name"] == "map.png"
    assert open(user["attachments"][0]["path"], "rb").read() == conversation.messages[0].attachments[0].path.read_bytes()
    assert (assistant["status"], assistant["stats"]) == ("stopped", {"decode_tps": 8.0})


def test_export_picks_the_format_from_the_suffix(history, make_image, tmp_path):
    conversation = _conversation(history, make_image)
    as_json = export_conversation(conversation, tmp_path / "out" / "chat.json")
    as_markdown = export_conversation(conversation, tmp_path / "out" / "chat.md")
    assert json.loads(as_json.read_text())["id"] == conversation.id
    assert as_markdown.read_text().startswith("# Capital")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["chat.json", "chat.md"]
    assert suggested_file_name(conversation) == "capital-of-france.md"
    assert suggested_file_name(conversation, "json") == "capital-of-france.json"
