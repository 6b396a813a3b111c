"""Which model a calibration belongs to: the identity a predictor file records, how two identities compare, and
what each difference means for a file (the policy, as a table).

A ``ModelIdentity`` holds
    model_class  the transformer's exact class, e.g. "comfy.ldm.flux.model.Flux" (FLUX.2 has its own)
    config_name  ComfyUI's model config class, e.g. "Flux" or "FluxSchnell" ("unknown" outside ComfyUI)
    config       the model's unet_config (JSON-able entries only), e.g. {"guidance_embed": true, "depth": 19, ...}
    weights      a fingerprint: a few values at fixed positions of up to 8 weight tensors (chosen by a hash of their
                 names, so a host that adds or renames one keeps the rest), with their storage dtypes
    patches      the weight patches applied on top (LoRA, model merges): "none" or "<n> keys <hex digest>"
Stored as one JSON string under the file's ``model_identity`` metadata. Computing it from a ComfyUI model is
``nodes/model_identity.py``; nothing here reads a model.

Two identities compare to one ``Verdict``; ``POLICY`` says, per verdict, whether a file is used always, only when
the user allows another model (``OtherModel.ALLOW``: a LoRA on the same base, a fine-tune), or never.
The same weights stored at another precision (bf16 / fp16 / fp8) differ by rounding only: measured on N(0, 0.02)
values, fp16 0.02 %, bf16 0.17 %, fp8 e4m3 3.3 %, fp8 e5m2 5.3 % relative RMS; ``PRECISION_TOLERANCE`` (10 %)
covers them twice over. Values in the same dtype must be equal: any difference is other weights.
"""
from __future__ import annotations

import base64
import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

IDENTITY_KEY = "model_identity"
UNKNOWN = "unknown"
NO_PATCHES = "none"
PRECISION_TOLERANCE = 0.10


@dataclass(frozen=True, eq=False)  # compare identities with compare(), not ==
class WeightFingerprint:
    """values[name] = float32 samples of that tensor at fixed positions; dtypes[name] = its storage dtype."""

    values: Mapping[str, np.ndarray]
    dtypes: Mapping[str, str]

    def to_json(self) -> dict:
        return {name: [self.dtypes[name], base64.b64encode(np.asarray(v, "<f4").tobytes()).decode("ascii")]
                for name, v in self.values.items()}

    @classmethod
    def from_json(cls, data: Mapping) -> "WeightFingerprint":
        values = {n: np.frombuffer(base64.b64decode(v[1]), dtype="<f4").copy() for n, v in data.items()}
        return cls(values, {n: str(v[0]) for n, v in data.items()})


@dataclass(frozen=True, eq=False)
class ModelIdentity:
    model_class: str
    config_name: str = UNKNOWN
    config: Mapping[str, object] = field(default_factory=dict)
    weights: WeightFingerprint | None = None  # None: could not be read (the reason is in weights_note)
    weights_note: str = ""
    patches: str = NO_PATCHES

    def to_metadata(self) -> str:
        return json.dumps({"class": self.model_class, "config_name": self.config_name, "config": dict(self.config),
                           "weights": None if self.weights is None else self.weights.to_json(),
                           "weights_note": self.weights_note, "patches": self.patches}, sort_keys=True)

    @classmethod
    def from_metadata(cls, text: str, source: str) -> "ModelIdentity":
        try:
            data = json.loads(text)
            weights = data.get("weights")
            return cls(str(data["class"]), str(data.get("config_name", UNKNOWN)), dict(data.get("config") or {}),
                       None if weights is None else WeightFingerprint.from_json(weights),
                       str(data.get("weights_note", "")), str(data.get("patches", NO_PATCHES)))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"{source}: metadata '{IDENTITY_KEY}' is not a model identity ({exc})") from None

    def describe(self) -> str:
        lora = "" if self.patches == NO_PATCHES else f", patched ({self.patches})"
        return f"{self.model_class} ({self.config_name}){lora}"


def identity_of(extra: Mapping[str, str], source: str) -> ModelIdentity | None:
    """The identity a file's metadata records; None for files made before identities were recorded."""
    text = extra.get(IDENTITY_KEY)
    return None if text is None else ModelIdentity.from_metadata(text, source)


def patches_digest(entries: list[bytes]) -> str:
    """The ``patches`` text for the byte descriptions of the patched keys (one entry per key, any order)."""
    if not entries:
        return NO_PATCHES
    digest = hashlib.sha256(b"".join(sorted(entries))).hexdigest()[:16]
    return f"{len(entries)} key{'s' if len(entries) != 1 else ''} {digest}"


# ---------------------------------------------------------------------------------------------- comparing
class Verdict(enum.Enum):
    SAME = "the same model"
    NO_RECORD = "the file records no model identity (made before identities were recorded)"
    WEIGHTS_UNREAD = "the weights could not be compared"
    PRECISION = "the same weights at another precision"
    OTHER_PATCHES = "the same base weights with other LoRA / weight patches"
    OTHER_WEIGHTS = "other weights of the same architecture (a fine-tune or another checkpoint)"
    OTHER_CONFIG = "another model configuration of the same class"
    OTHER_CLASS = "another model class"


class OtherModel(enum.Enum):
    """The user's choice for a file calibrated on a related model (L2P Cache's ``other_model`` input)."""

    REFUSE = "refuse"
    ALLOW = "allow LoRA / fine-tune"


class Use(enum.Enum):
    ALWAYS = "used"
    WHEN_ALLOWED = "used only when other_model allows it"
    NEVER = "refused"


@dataclass(frozen=True)
class Rule:
    use: Use
    note: bool  # True: the run's report says what differed when the file is used


POLICY: Mapping[Verdict, Rule] = {
    Verdict.SAME: Rule(Use.ALWAYS, note=False),
    Verdict.NO_RECORD: Rule(Use.ALWAYS, note=True),  # old files still load
    Verdict.WEIGHTS_UNREAD: Rule(Use.ALWAYS, note=True),  # class and config matched; say what was not checked
    Verdict.PRECISION: Rule(Use.ALWAYS, note=True),
    Verdict.OTHER_PATCHES: Rule(Use.WHEN_ALLOWED, note=True),
    Verdict.OTHER_WEIGHTS: Rule(Use.WHEN_ALLOWED, note=True),
    Verdict.OTHER_CONFIG: Rule(Use.NEVER, note=True),
    Verdict.OTHER_CLASS: Rule(Use.NEVER, note=True),
}


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    detail: str  # what differs, e.g. "guidance_embed: file True, model False"

    def text(self) -> str:
        return self.verdict.value + (f" ({self.detail})" if self.detail else "")

    def accepted(self, other_model: OtherModel) -> bool:
        use = POLICY[self.verdict].use
        return use is Use.ALWAYS or (use is Use.WHEN_ALLOWED and other_model is OtherModel.ALLOW)


def compare(recorded: ModelIdentity | None, model: ModelIdentity) -> Comparison:
    """How ``model`` relates to the identity a file ``recorded`` (the most serious difference wins)."""
    if recorded is None:
        return Comparison(Verdict.NO_RECORD, "")
    if recorded.model_class != model.model_class:
        return Comparison(Verdict.OTHER_CLASS, f"file {recorded.model_class}, model {model.model_class}")
    config = _config_difference(recorded, model)
    if config:
        return Comparison(Verdict.OTHER_CONFIG, config)
    weights = _weights_difference(recorded.weights, model.weights)
    if weights is not None and weights[0] is Verdict.OTHER_WEIGHTS:
        return Comparison(*weights)
    if recorded.patches != model.patches:
        return Comparison(Verdict.OTHER_PATCHES, f"file {recorded.patches}, model {model.patches}")
    if weights is not None:
        return Comparison(*weights)
    return Comparison(Verdict.SAME, "")


def _config_difference(a: ModelIdentity, b: ModelIdentity) -> str:
    if UNKNOWN not in (a.config_name, b.config_name) and a.config_name != b.config_name:
        return f"config file {a.config_name}, model {b.config_name}"
    # keys only one side has are not compared: a newer host may add entries with their defaults
    keys = sorted(set(a.config) & set(b.config))
    diffs = [f"{k}: file {a.config[k]!r}, model {b.config[k]!r}" for k in keys if a.config[k] != b.config[k]]
    return "; ".join(diffs[:4]) + (f"; {len(diffs) - 4} more" if len(diffs) > 4 else "")


def _weights_difference(a: WeightFingerprint | None, b: WeightFingerprint | None) -> tuple[Verdict, str] | None:
    """None when the sampled values are equal; else (verdict, detail)."""
    if a is None or b is None:
        return Verdict.WEIGHTS_UNREAD, "no fingerprint on one side"
    names = sorted(set(a.values) & set(b.values))
    names = [n for n in names if a.values[n].shape == b.values[n].shape]
    if not names:
        return Verdict.WEIGHTS_UNREAD, "no weight tensor in common"
    x = np.concatenate([a.values[n] for n in names]).astype(np.float64)
    y = np.concatenate([b.values[n] for n in names]).astype(np.float64)
    if np.array_equal(x, y):
        return None
    rel = float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30))
    same_dtypes = all(a.dtypes[n] == b.dtypes[n] for n in names)
    dtypes = "same dtypes" if same_dtypes else "dtypes " + ", ".join(
        sorted({f"{a.dtypes[n]} -> {b.dtypes[n]}" for n in names if a.dtypes[n] != b.dtypes[n]}))
    detail = f"sampled weights differ by {100 * rel:.2g} % RMS, {dtypes}"
    if not same_dtypes and rel <= PRECISION_TOLERANCE:
        return Verdict.PRECISION, detail
    return Verdict.OTHER_WEIGHTS, detail
