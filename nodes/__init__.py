"""ComfyUI glue. Only ``cache_nodes`` and ``files`` import the host; the wrappers and run state do not, so CI
tests them with stand-ins where ComfyUI is absent."""
