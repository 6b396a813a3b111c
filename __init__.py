"""ComfyUI-L2P: registration only. ComfyUI imports this file; everything else lives in nodes/ and predictors/."""
try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # imported outside ComfyUI (pytest collects the repository as a package): nothing to register
    ComfyExtension = None

if ComfyExtension is not None:
    from .nodes.cache_nodes import NODES
    from .nodes.files import register_folder

    class L2PExtension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return list(NODES)

    async def comfy_entrypoint() -> L2PExtension:
        register_folder()
        return L2PExtension()
