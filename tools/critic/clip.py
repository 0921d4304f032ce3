"""``clip:<model>``: judge illustrations with CLIPScore, against their own prompt and the others.

CLIPScore (Hessel et al., 2021) = 2.5 * max(cos(image, text), 0), range 0..2.5, with ViT-B/32.
An absolute threshold alone barely separates a good picture from noise, so a frame is judged
contrastively too: it must match its own scene's prompt better than every other scene's prompt,
by a margin. Both numbers are constructor arguments.

Embeddings come from one ``CLIPModel`` forward pass, whose output carries normalised
``image_embeds``/``text_embeds`` in every transformers release (``get_image_features`` returns a
tensor in 4.x but an output object in 5.x, which is what breaks torchmetrics' CLIPScore there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lessonforge.tools import extras
from lessonforge.tools.base import ConfigError, CriticBackend, CriticError, Verdict
from lessonforge.tools.defaults import CLIP_CRITIC
from lessonforge.tools.hub import first_use, hub_cache_dir, quiet_progress
from lessonforge.tools.registry import BackendOptions

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

# What loading imports (the [local] extra), and how to do without this critic.
_PACKAGES = ("torch", "transformers")
_INSTEAD = "--critic none or --critic openai:"

CLIPSCORE_WEIGHT = 2.5  # Hessel et al.'s w: rescales ViT-B/32 cosines (about 0..0.4) to about 0..1

# Defaults, on the CLIPScore scale (2.5 * cos), for ViT-B/32:
#  * real image-caption matches score cos ~0.30-0.36 (0.75-0.90); random noise against an unrelated
#    caption already scores cos ~0.24 (0.60). A floor of 0.65 (cos 0.26) rejects noise, blank and
#    off-topic frames with room to spare while keeping weak-but-real matches; the contrast below
#    does the finer work.
#  * the other prompts are sibling scenes of the same lesson, so they are close in meaning and their
#    scores sit near the frame's own. Requiring its own prompt to win by 0.02 (cos 0.008, about the
#    spread between near-paraphrases) rejects frames that could illustrate another scene just as
#    well, without demanding a gap that related scenes cannot show.
DEFAULT_FLOOR = 0.65
DEFAULT_MARGIN = 0.02


def clip_score(image_embeds: Any, text_embeds: Any) -> np.ndarray:
    """CLIPScore for every image x text pair: ``2.5 * max(cos, 0)``, shape (n_images, n_texts).

    Embeddings need not be normalised; a zero vector scores 0 against everything.
    """
    images = np.atleast_2d(np.asarray(_numpy(image_embeds), dtype=np.float64))
    texts = np.atleast_2d(np.asarray(_numpy(text_embeds), dtype=np.float64))
    if images.shape[1] != texts.shape[1]:
        raise ValueError(f"embedding sizes differ: images {images.shape[1]}, texts {texts.shape[1]}")
    images = images / np.maximum(np.linalg.norm(images, axis=1, keepdims=True), 1e-12)
    texts = texts / np.maximum(np.linalg.norm(texts, axis=1, keepdims=True), 1e-12)
    return CLIPSCORE_WEIGHT * np.clip(images @ texts.T, 0.0, None)


def _numpy(x: Any) -> Any:
    """A torch tensor (any device/dtype) or array-like as something numpy can read."""
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return x


def check_targets(n_images: int, n_prompts: int, targets: Sequence[int] | None) -> list[int]:
    """The prompt index each image is judged against (default: image i against prompt i), checked."""
    out = list(range(n_images)) if targets is None else [int(t) for t in targets]
    if len(out) != n_images:
        raise ConfigError(
            f"judge got {n_images} image(s) but {len(out)} target(s). Fix: pass one target prompt index per image."
        )
    bad = [t for t in out if not 0 <= t < n_prompts]
    if bad:
        raise ConfigError(
            f"judge targets {bad} are outside the {n_prompts} prompt(s). Fix: pass one prompt per scene and "
            f"target indices from 0 to {n_prompts - 1}."
        )
    return out


def decide(row: Sequence[float], target: int, floor: float, margin: float) -> Verdict:
    """The verdict for one image whose scores against every prompt are ``row``; its own is ``row[target]``.

    Accepted when its own score reaches ``floor`` and beats every other prompt's by at least
    ``margin`` (with a single prompt only the floor applies).
    """
    scores = tuple(float(s) for s in row)
    own = scores[target]
    others = [(j, s) for j, s in enumerate(scores) if j != target]
    rank = 1 + sum(1 for _, s in others if s > own)
    problems: list[str] = []
    if own < floor:
        problems.append(f"weak match for its own prompt ({own:.2f} < floor {floor:.2f})")
    rival, rival_score = max(others, key=lambda js: js[1]) if others else (None, None)
    if rival is not None and rival_score is not None:
        if rival_score > own:
            problems.append(f"matches scene {rival + 1}'s prompt better ({rival_score:.2f} vs {own:.2f})")
        elif own - rival_score < margin:
            problems.append(
                f"barely tells its prompt from scene {rival + 1}'s ({own:.2f} vs {rival_score:.2f}, "
                f"margin {margin:.2f})"
            )
    if problems:
        reason = "; ".join(problems)
    elif rival is None or rival_score is None:
        reason = f"matches its prompt ({own:.2f} >= floor {floor:.2f})"
    else:
        reason = (
            f"matches its prompt ({own:.2f} >= floor {floor:.2f}) and beats the next best, "
            f"scene {rival + 1}'s ({rival_score:.2f}), by {own - rival_score:.2f}"
        )
    return Verdict(accepted=not problems, score=own, scores=scores, rank=rank, reason=reason)


class ClipCritic(CriticBackend):
    """Judges pictures against prompts with CLIP (see the module docstring for the rule)."""

    local = True
    scoring = True

    class Options(BackendOptions):
        """What ``clip:`` takes (see the constructor)."""

        floor: float = DEFAULT_FLOOR
        margin: float = DEFAULT_MARGIN
        device: str | None = None
        device_preprocess: bool | None = None

    def __init__(
        self,
        model: str = CLIP_CRITIC,
        *,
        floor: float = DEFAULT_FLOOR,
        margin: float = DEFAULT_MARGIN,
        device: str | None = None,
        device_preprocess: bool | None = None,
    ) -> None:
        self.model = model or CLIP_CRITIC
        self.name = f"clip:{self.model}"
        if not 0.0 <= float(floor) <= CLIPSCORE_WEIGHT:
            raise ConfigError(
                f"Critic floor {floor} is off the CLIPScore scale. Fix: pass a floor between 0 and "
                f"{CLIPSCORE_WEIGHT} (default {DEFAULT_FLOOR})."
            )
        if float(margin) < 0.0:
            raise ConfigError(
                f"Critic margin {margin} is negative. Fix: pass 0 or more (default {DEFAULT_MARGIN})."
            )
        self.floor = float(floor)
        self.margin = float(margin)
        self._device = device
        self._device_preprocess = device_preprocess
        self._clip: Any = None
        self._tokenizer: Any = None
        self._image_processor: Any = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """The torch device: as given, else "cuda" when available, else "cpu"."""
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    # ----------------------------------------------------------------- loading

    def downloads(self) -> list[Any]:
        """What loading fetches from the Hub on first use (nothing for a local folder); ConfigError naming the
        ``[local]`` extra when its packages are not installed."""
        extras.require(f"The critic {self.name}", _PACKAGES, extras.LOCAL, _INSTEAD)
        return first_use((self.model, "clip"))

    def load(self) -> None:
        """Load the model, tokenizer and image processor once (thread-safe)."""
        if self._clip is not None:
            return
        with self._lock:
            if self._clip is not None:
                return
            extras.require(f"The critic {self.name}", _PACKAGES, extras.LOCAL, _INSTEAD)
            from transformers import CLIPModel, CLIPTokenizer

            try:
                with quiet_progress():
                    cache = str(hub_cache_dir())  # the environment's cache, read now
                    tokenizer = CLIPTokenizer.from_pretrained(self.model, cache_dir=cache)
                    image_processor = _image_processor_class().from_pretrained(self.model, cache_dir=cache)
                    clip = CLIPModel.from_pretrained(self.model, cache_dir=cache, attn_implementation="sdpa",
                                                     **{_dtype_kwarg(): self._dtype()})
            except Exception as exc:
                raise ConfigError(
                    f"Could not load critic model {self.model!r}{_offline_note()} ({_one_line(exc)}). "
                    f"Fix: check the model id or folder (e.g. {CLIP_CRITIC}); if it is a hub "
                    f"id, run once online to download it, or set HF_HOME to the cache that holds it; or "
                    f"pass --critic none to accept every illustration unjudged."
                ) from exc
            self._use(clip, tokenizer, image_processor)
            log.info("loaded %s on %s", self.name, self.device)

    @classmethod
    def from_parts(cls, clip: Any, tokenizer: Any, image_processor: Any, model: str, **options: Any) -> ClipCritic:
        """A critic around a ``CLIPModel`` already built (e.g. from a config), named ``clip:<model>``."""
        critic = cls(model, **options)
        with critic._lock:
            critic._use(clip.to(critic._dtype()), tokenizer, image_processor)
        return critic

    def _dtype(self) -> Any:
        """fp16 on CUDA (the scores are cosines; fp16 moves them by about 1e-3), fp32 elsewhere."""
        import torch

        return torch.float16 if self.device.startswith("cuda") else torch.float32

    def _use(self, clip: Any, tokenizer: Any, image_processor: Any) -> None:
        clip.eval().to(self.device)
        self._tokenizer, self._image_processor = tokenizer, image_processor
        self._clip = clip

    @property
    def max_tokens(self) -> int:
        """Prompts are truncated to this many tokens (77 for CLIP)."""
        self.load()
        positions = int(self._clip.config.text_config.max_position_embeddings)
        return min(positions, int(self._tokenizer.model_max_length or positions))

    # ----------------------------------------------------------------- scoring

    def scores(self, images: Sequence[PILImage], prompts: Sequence[str]) -> np.ndarray:
        """CLIPScore of every image against every prompt, shape (n_images, n_prompts), one forward pass."""
        if not images or not prompts:
            return np.zeros((len(images), len(prompts)), dtype=np.float64)
        self.load()
        import torch

        try:
            text = self._tokenizer(
                list(prompts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
            )
            dtype = self._clip.dtype
            on_device = self._device_preprocess
            if on_device if on_device is not None else self.device.startswith("cuda"):
                pixel_values = preprocess_on_device(images, self._image_processor, self.device, dtype)
            else:
                pixel_values = self._image_processor(images=[im.convert("RGB") for im in images],
                                                     return_tensors="pt")["pixel_values"].to(self.device, dtype)
            with torch.inference_mode():
                out = self._clip(
                    input_ids=text["input_ids"].to(self.device),
                    attention_mask=text["attention_mask"].to(self.device),
                    pixel_values=pixel_values,
                )
        except Exception as exc:
            raise CriticError(
                f"Critic {self.name} failed on {len(images)} image(s) ({_one_line(exc)}). Fix: check the "
                f"images are RGB pictures, or pass --critic none to skip judging."
            ) from exc
        return clip_score(out.image_embeds, out.text_embeds)

    def judge(
        self,
        images: Sequence[PILImage],
        prompts: Sequence[str],
        targets: Sequence[int] | None = None,
    ) -> list[Verdict]:
        """Judge ``images[i]`` against ``prompts[targets[i]]`` (default ``prompts[i]``), contrastively.

        Accepted when its own score >= ``floor`` and it beats every other prompt by >= ``margin``.
        """
        targets = check_targets(len(images), len(prompts), targets)
        if not images:
            return []
        matrix = self.scores(images, prompts)
        return [decide(matrix[i], t, self.floor, self.margin) for i, t in enumerate(targets)]


def _setting(values: Any, key: str) -> Any:
    """``values[key]`` of a processor's size dict (a dict in transformers 4, a ``SizeDict`` in 5), or None."""
    if isinstance(values, dict):
        return values.get(key)
    return getattr(values, key, None)


def preprocess_on_device(images: Sequence[PILImage], processor: Any, device: str, dtype: Any) -> Any:
    """What ``processor`` (a CLIP image processor) does to ``images``, done with torch on ``device``.

    Resize (shortest edge, bicubic with antialiasing, rounded to 8 bits as PIL does), centre crop,
    rescale and normalise with the processor's own settings: the pictures cross to the GPU once, as
    uint8, instead of being resized one by one in PIL on the CPU. Values match the PIL path to
    within a few 8-bit levels. Returns ``pixel_values`` (N, 3, crop height, crop width).
    """
    import torch
    import torch.nn.functional as F

    short = _setting(processor.size, "shortest_edge")
    crop_h, crop_w = _setting(processor.crop_size, "height"), _setting(processor.crop_size, "width")
    mean = torch.tensor(processor.image_mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    arrays = [np.array(image.convert("RGB")) for image in images]
    groups: dict[tuple[int, int], list[int]] = {}  # pictures of one size are resized as one batch
    for i, array in enumerate(arrays):
        groups.setdefault(array.shape[:2], []).append(i)
    out: list[Any] = [None] * len(arrays)
    for (h, w), idx in groups.items():
        batch = torch.from_numpy(np.stack([arrays[i] for i in idx])).to(device).permute(0, 3, 1, 2).float()
        if short:
            size = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        else:
            size = (_setting(processor.size, "height"), _setting(processor.size, "width"))
        if size != (h, w):
            batch = F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)
            batch = batch.clamp(0, 255).round()
        top, left = max(0, (size[0] - crop_h) // 2), max(0, (size[1] - crop_w) // 2)
        batch = batch[:, :, top : top + crop_h, left : left + crop_w]
        batch = (batch * float(processor.rescale_factor) - mean) / std
        for j, i in enumerate(idx):
            out[i] = batch[j]
    return torch.stack(out).to(dtype)


def _image_processor_class() -> Any:
    """transformers 5: the PIL backend (the default one needs torchvision); 4.x: the PIL-based class."""
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


def _dtype_kwarg() -> str:
    """transformers 4.56+ takes ``dtype`` (``torch_dtype`` is deprecated); older releases only ``torch_dtype``."""
    import transformers
    from packaging.version import Version

    return "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def _offline_note() -> str:
    from huggingface_hub import constants

    return " with the hub offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else ""


def _one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or "no details"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
