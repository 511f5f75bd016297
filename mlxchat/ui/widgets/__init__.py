"""Provides the chat screen's panes: conversation, messages, attachments, status and prompt."""
