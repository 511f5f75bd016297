"""Provides `mlxchat bench`: numbers that prove the engine adds nothing to the model's own speed."""
