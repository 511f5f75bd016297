"""Provides the app's screens: the chat screen and the modals it opens (help, file picker)."""
