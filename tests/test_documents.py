"""Document attachments: what is read, what is refused (by name, with the reason), and how a document enters the
prompt through the engine."""

from __future__ import annotations

import codecs

import pytest

from mlxchat.engine.documents import (
    DocumentError,
    document_block,
    is_document_path,
    prompt_content,
    read_document,
)


def make_pdf(path, text: str | None) -> None:
    """A one-page PDF with `text` on it (None: a blank page, as a scan without a text layer reads)."""
    stream = f"BT /F1 18 Tf 10 100 Td ({text}) Tj ET".encode() if text else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def test_a_markdown_file_is_read_with_its_name_and_size(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\r\nParis is the capital.\r\n", encoding="utf-8")
    document = read_document(path)
    assert (document.name, document.size_bytes) == ("notes.md", path.stat().st_size)
    assert document.text == "# Notes\nParis is the capital.\n"
    assert document.estimated_tokens > 0


def test_utf16_with_a_byte_order_mark_is_text(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "héllo".encode("utf-16-le"))
    assert read_document(path).text == "héllo"


def test_a_pdf_gives_the_text_of_its_pages(tmp_path):
    path = tmp_path / "paper.pdf"
    make_pdf(path, "Hello PDF world")
    assert "Hello PDF world" in read_document(path).text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("photo.dat", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("legacy.txt", "café".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "not a readable PDF"),
    ],
)
def test_what_is_not_text_is_refused_by_name(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError) as refused:
        read_document(path)
    assert str(refused.value).startswith(f"{name}: ") and reason in str(refused.value)


def test_a_pdf_without_a_text_layer_is_refused(tmp_path):
    path = tmp_path / "scan.pdf"
    make_pdf(path, None)
    with pytest.raises(DocumentError, match="scan.pdf: the PDF has no text layer"):
        read_document(path)


def test_a_missing_file_and_a_folder_are_refused(tmp_path):
    with pytest.raises(DocumentError, match="gone.txt: the file does not exist"):
        read_document(tmp_path / "gone.txt")
    with pytest.raises(DocumentError, match="not a file"):
        read_document(tmp_path)


def test_documents_go_before_the_words_each_in_a_named_block(tmp_path):
    first, second = tmp_path / "a.py", tmp_path / "b.csv"
    first.write_text("def f():\n    return 1\n")
    second.write_text("x,y\n1,2\n")
    content = prompt_content("Compare them.", (first, second))
    assert content == (
        '<document name="a.py">\ndef f():\n    return 1\n</document>\n\n'
        '<document name="b.csv">\nx,y\n1,2\n</document>\n\nCompare them.'
    )
    assert document_block(read_document(first)).startswith('<document name="a.py">')


def test_names_tell_documents_from_images():
    assert is_document_path("x.md") and is_document_path("report.PDF") and is_document_path("Makefile")
    assert not is_document_path("cat.png") and not is_document_path("photo.jpg")


def png_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    "name, content",
    [
        ("README", "# Project\n\nHow to build it.\n"),
        ("CHANGELOG", "1.0: first release. Ünïcödé is fine.\n"),
        ("server.log", "2026-12-01 12:00:00 INFO started\n"),
        ("pyproject.toml", '[project]\nname = "x"\n'),
        ("main.rs", 'fn main() { println!("hi"); }\n'),
        ("notes.weird-suffix", "plain words in a file with a suffix no list knows\n"),
    ],
)
def test_text_is_a_document_by_its_content_whatever_its_name(tmp_path, name, content):
    from mlxchat.engine.documents import is_document
    from mlxchat.ui.attachment_files import open_attachment

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert is_document(path)
    attachment = open_attachment(path)
    assert attachment.is_document and attachment.tokens > 0


def test_a_pdf_without_its_suffix_is_a_document_by_its_magic_bytes(tmp_path):
    from mlxchat.engine.documents import is_document

    path = tmp_path / "scan-2024"
    make_pdf(path, "Quarterly figures")
    assert is_document(path)
    assert "Quarterly figures" in read_document(path).text


def test_an_image_with_a_misleading_name_or_none_is_still_an_image(tmp_path):
    from mlxchat.engine.documents import is_document
    from mlxchat.ui.attachment_files import open_attachment

    for name in ("picture", "picture.dat"):
        path = tmp_path / name
        path.write_bytes(png_bytes())
        assert not is_document(path)
        assert open_attachment(path).format == "PNG"


def test_a_binary_file_named_as_text_is_refused_by_name(tmp_path):
    from mlxchat.ui.attachment_files import AttachmentError, open_attachment

    path = tmp_path / "notes.txt"
    path.write_bytes(png_bytes())  # a PNG has NUL bytes in its first 16
    with pytest.raises(AttachmentError, match=r"^Cannot attach notes\.txt: a binary file, not text"):
        open_attachment(path)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café crème".encode("latin-1"))
    with pytest.raises(AttachmentError, match=r"^Cannot attach latin\.txt: not UTF-8 text"):
        open_attachment(latin)


def test_the_chat_sends_a_suffixless_text_file_as_a_document_decided_once_when_attached(tmp_path, monkeypatch):
    import mlxchat.engine.documents as documents
    from mlxchat.ui.attachment_files import open_attachment
    from mlxchat.ui.chat_model import Turn

    text, picture = tmp_path / "NOTES", tmp_path / "photo"
    text.write_text("Remember the milk.\n")
    picture.write_bytes(png_bytes())
    attached = [open_attachment(text), open_attachment(picture)]
    turn = Turn("user", "What do they say?", images=(text, picture), documents=(text,))
    assert tuple(a.path for a in attached if a.is_document) == turn.documents

    def no_reading(*args, **kwargs):
        raise AssertionError("a request was built by reading an attachment on the UI thread")

    monkeypatch.setattr(documents, "is_document", no_reading)
    message = turn.as_message()
    assert message.documents == (text,) and message.images == (picture,)


def test_the_history_tells_documents_from_images_by_the_chats_rule(tmp_path):
    """A suffixless text file and a Latin-1 `.txt` (a document by its name, refused when read) come back from
    the history as documents, a PNG as an image: the same answers the attach check gave."""
    from mlxchat.engine.documents import is_document
    from mlxchat.store import History
    from mlxchat.ui.session_store import session_from

    readme, legacy, picture = tmp_path / "README", tmp_path / "legacy.txt", tmp_path / "photo"
    readme.write_text("Remember the milk.\n")
    legacy.write_bytes("café".encode("latin-1"))
    picture.write_bytes(png_bytes())
    history = History(tmp_path / "data")
    try:
        conversation = history.create_conversation("Files")
        history.add_message(conversation.id, "user", "Read these.", images=(readme, legacy, picture))
        (turn,) = session_from(history.get_conversation(conversation.id)).turns
    finally:
        history.close()
    assert [is_document(path) for path in (readme, legacy, picture)] == [True, True, False], "the attach check"
    assert len(turn.images) == 3 and turn.documents == turn.images[1:], "the picture alone is an image"
    assert turn.as_message().images == turn.images[:1]


def test_a_latin1_file_without_a_suffix_is_told_it_is_neither_readable_text_nor_an_image(tmp_path):
    from mlxchat.ui.attachment_files import AttachmentError, open_attachment

    path = tmp_path / "NOTES"
    path.write_bytes("Crème brûlée, café au lait.\n".encode("latin-1"))
    with pytest.raises(AttachmentError) as refused:
        open_attachment(path)
    assert "neither a text document" in str(refused.value) and "not UTF-8" in str(refused.value)
    assert "nor an image" in str(refused.value)


# ---- through the engine ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    from mlxchat.models.random_weights import RandomLlamaSpec, build_random_llama

    spec = RandomLlamaSpec(max_position_embeddings=256)
    return build_random_llama(tmp_path_factory.mktemp("models") / "short", spec)


@pytest.fixture
def short_engine(engine, event_log, short_model):
    from mlxchat.engine import LoadModel

    load = LoadModel(str(short_model))
    engine.submit(load)
    assert event_log.finished(load.request_id).reason == "stop"
    return engine


def ask(engine, event_log, message):
    from mlxchat.engine import ChatRequest, SamplingParams

    request = ChatRequest((message,), sampling=SamplingParams(temperature=0, max_tokens=3))
    assert engine.submit(request) is None
    return event_log.finished(request.request_id)


def test_an_attached_document_is_read_by_the_model(short_engine, event_log, tmp_path):
    from mlxchat.engine import Message

    path = tmp_path / "facts.txt"
    path.write_text("The capital of France is Paris. The capital of Italy is Rome.")
    plain = ask(short_engine, event_log, Message("user", "Which capital?"))
    with_document = ask(short_engine, event_log, Message("user", "Which capital?", documents=(path,)))
    assert with_document.reason == "length", with_document.error
    assert with_document.usage.prompt_tokens > plain.usage.prompt_tokens + 10


def test_a_document_too_large_for_the_context_says_its_tokens_against_the_room(short_engine, event_log, tmp_path):
    from mlxchat.engine import Message

    path = tmp_path / "book.txt"
    path.write_text("Once upon a time there was a small model that answered every question. " * 40)
    finished = ask(short_engine, event_log, Message("user", "Summarise.", documents=(path,)))
    assert finished.reason == "error"
    assert finished.error.startswith("book.txt is about ") and "tokens are left" in finished.error


def test_a_document_that_became_unreadable_fails_the_turn_with_its_name(short_engine, event_log, tmp_path):
    from mlxchat.engine import Message

    path = tmp_path / "moved.txt"
    finished = ask(short_engine, event_log, Message("user", "Read it.", documents=(path,)))
    assert finished.reason == "error" and finished.error == "moved.txt: the file does not exist."
