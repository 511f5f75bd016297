"""Provides mlxchat's Textual interface.

This package never imports MLX, mlx-lm or mlx-vlm: it talks to the model only through `mlxchat.engine`'s
requests and events, so the window paints before any heavy import happens (a test checks `sys.modules`).
"""
