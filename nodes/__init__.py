"""ComfyUI glue. Only ``cache_nodes``, ``files`` and ``host_check`` (inside the function a node calls) import the
host; the wrappers and run state do not, so CI tests them with stand-ins where ComfyUI is absent."""
