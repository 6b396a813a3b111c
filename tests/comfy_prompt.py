"""Run a whole graph the way ComfyUI's server does: ``execution.validate_prompt`` then ``PromptExecutor``.

What a user sees of an error (the node it is shown on, the exception type string, the message) is what
``PromptExecutor`` sends as its "execution_error" message; this harness returns those messages, formed by the
host's own code. The graph is a prompt in API format ({node id: {"class_type", "inputs"}}); inputs that are
links are [node id, output index]. Models, conditionings and latents come from source nodes registered only
for the call (``Source``), with the values a test built (e.g. with ``tiny_models.tiny_flux``), and every graph
ends in ``SINK`` (an output node that takes a LATENT), because ComfyUI executes only graphs with an output node.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import uuid
from typing import Any, Iterator

import torch

import comfy_host
import comfy_sampling
import tiny_models

SINK = "L2PTestLatentSink"


@dataclasses.dataclass(frozen=True)
class Source:
    """A node without inputs that outputs ``value`` as ComfyUI type ``kind`` (MODEL, CONDITIONING, LATENT)."""

    kind: str
    value: Any


@dataclasses.dataclass(frozen=True)
class GraphRun:
    messages: list[tuple[str, dict]]  # PromptExecutor's status messages (event, data), errors included
    sink_latents: list[torch.Tensor]

    @property
    def error(self) -> dict | None:
        """The "execution_error" message (node_type, exception_type, exception_message, ...), or None."""
        return next((data for event, data in self.messages if event == "execution_error"), None)

    @property
    def succeeded(self) -> bool:
        return any(event == "execution_success" for event, _ in self.messages)


class _Server:
    """What PromptExecutor reads of ComfyUI's PromptServer: no client connected, messages collected."""

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None) -> None:
        self.messages.append((event, data))

    def queue_updated(self) -> None:
        pass


def _source_class(source: Source) -> type:
    def run(self):
        return (source.value,)

    return type("L2PTestSource", (), {
        "INPUT_TYPES": classmethod(lambda cls: {"required": {}}), "RETURN_TYPES": (source.kind,),
        "FUNCTION": "run", "CATEGORY": "l2p_test", "run": run,
    })


def _sink_class(store: list) -> type:
    def run(self, samples):
        store.append(samples["samples"])
        return {}

    return type("L2PTestLatentSink", (), {
        "INPUT_TYPES": classmethod(lambda cls: {"required": {"samples": ("LATENT",)}}), "RETURN_TYPES": (),
        "FUNCTION": "run", "OUTPUT_NODE": True, "CATEGORY": "l2p_test", "run": run,
    })


@contextlib.contextmanager
def _registered(classes: dict[str, type]) -> Iterator[None]:
    nodes = comfy_host.bootstrap().nodes
    saved = {name: nodes.NODE_CLASS_MAPPINGS.get(name) for name in classes}
    nodes.NODE_CLASS_MAPPINGS.update(classes)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                nodes.NODE_CLASS_MAPPINGS.pop(name, None)
            else:
                nodes.NODE_CLASS_MAPPINGS[name] = old


def _executor_options(execution) -> dict:
    """What ComfyUI's main.py passes PromptExecutor besides the server, as its own defaults: nothing before 0.33;
    from 0.33 on cache arguments it reads unconditionally (the classic cache, as ``--cache-classic``)."""
    if "cache_args" not in inspect.signature(execution.PromptExecutor).parameters:
        return {}
    return {"cache_type": execution.CacheType.CLASSIC, "cache_args": {"lru": 0, "ram": 0, "ram_inactive": 0}}


def run_graph(prompt: dict, sources: dict[str, Source], server=None, client_id: str | None = None) -> GraphRun:
    """Validate and execute ``prompt`` as the server does; ``sources`` maps class_type names used in the prompt
    to the source nodes behind them. Raises AssertionError with ComfyUI's validation errors if it refuses the
    graph (that is not an execution error).

    ``server``: the PromptServer stand-in the executor talks to (default: one that only collects the executor's
    status messages); ``client_id``: the client that queued the prompt (the executor sends "executed" and the
    other per-client messages only when there is one)."""
    comfy_host.bootstrap()
    import execution  # ComfyUI's executor, importable only after bootstrap

    sink_latents: list[torch.Tensor] = []
    classes = {name: _source_class(source) for name, source in sources.items()}
    classes[SINK] = _sink_class(sink_latents)
    server = _Server() if server is None else server
    prompt_id = str(uuid.uuid4())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend (see comfy_sampling.one_thread)
    try:
        with _registered(classes):
            valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
            if not valid:
                raise AssertionError(f"ComfyUI refused the graph: {error} {node_errors}")
            executor = execution.PromptExecutor(server, **_executor_options(execution))
            executor.execute(prompt, prompt_id, {} if client_id is None else {"client_id": client_id}, outputs)
    finally:
        torch.set_num_threads(threads)
    return GraphRun(list(executor.status_messages), sink_latents)


def sampler_graph(model_node: dict, *, steps: int, cfg: float = 1.0, seed: int = 0) -> dict:
    """A prompt: sources "model" / "positive" / "negative" / "latent", ``model_node`` (class_type and inputs,
    its "model" input linked to the source) as node "l2p", then KSampler (euler, simple) and the sink."""
    l2p = {"class_type": model_node["class_type"], "inputs": {**model_node["inputs"], "model": ["model", 0]}}
    return {
        "model": {"class_type": "L2PTestModel", "inputs": {}},
        "positive": {"class_type": "L2PTestPositive", "inputs": {}},
        "negative": {"class_type": "L2PTestNegative", "inputs": {}},
        "latent": {"class_type": "L2PTestLatent", "inputs": {}},
        "l2p": l2p,
        "sampler": {"class_type": "KSampler", "inputs": {
            "model": ["l2p", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": "euler",
            "scheduler": "simple", "positive": ["positive", 0], "negative": ["negative", 0],
            "latent_image": ["latent", 0], "denoise": 1.0}},
        "sink": {"class_type": SINK, "inputs": {"samples": ["sampler", 0]}},
    }


def sampler_sources(tiny: tiny_models.TinyModel, seed: int = 0) -> dict[str, Source]:
    """The sources ``sampler_graph`` uses, for a TinyModel (conditionings as comfy_sampling.sample makes them)."""
    return {
        "L2PTestModel": Source("MODEL", tiny.patcher),
        "L2PTestPositive": Source("CONDITIONING", comfy_sampling.make_conditioning(tiny, seed=seed + 1)),
        "L2PTestNegative": Source("CONDITIONING", comfy_sampling.make_conditioning(tiny, seed=seed + 2)),
        "L2PTestLatent": Source("LATENT", {"samples": torch.zeros(tiny.latent_shape(1))}),
    }
