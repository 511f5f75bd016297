"""mlxchat: a terminal chat for local MLX models.

The package is split in two halves that never import each other's toolkit: `mlxchat.engine` owns every MLX
call on one long-lived thread, `mlxchat.ui` is the Textual front end. They meet through the request and event
dataclasses in `mlxchat.engine.requests` and `mlxchat.engine.events`.
"""

__version__ = "0.1.0"
