"""Provides the model layer: finding local models, converting GGUF files, preparing the demo model.

Import from the submodules (`discovery`, `gguf`, `demo`, `errors`). This package imports nothing on its
own, and `discovery` never imports MLX, so the UI may list models without paying for MLX.
"""
