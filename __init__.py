"""ComfyUI-L2P: registration only. ComfyUI imports this file; everything else lives in nodes/ and predictors/."""
import importlib.util

# The frontend extension that hides the inputs a choice leaves unused (web/input_scopes.js); ComfyUI serves this
# folder at /extensions/<pack folder>/ and loads its .js files into the page.
WEB_DIRECTORY = "./web"

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError as error:
    if importlib.util.find_spec("comfy") is None:  # imported outside ComfyUI (e.g. by tooling): nothing to register
        ComfyExtension = None
    else:  # inside a ComfyUI without the V3 node schema: too old, and ComfyUI logs this message on load
        from .nodes.host_check import comfyui_version, unsupported_message

        raise ImportError(unsupported_message(["comfy_api.latest (the V3 node schema, to register the nodes)"],
                                              comfyui_version())) from error

if ComfyExtension is not None:
    from .nodes.cache_nodes import NODES
    from .nodes.files import register_folder

    class L2PExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODES)

    async def comfy_entrypoint() -> L2PExtension:
        register_folder()
        return L2PExtension()
