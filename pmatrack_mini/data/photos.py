"""Photographs for the generator: backgrounds and targets that look like the world (``SynthConfig.background``).

Procedural textures (smooth noise and rectangles) may teach the experts features that do not transfer to real
footage; sequences whose backgrounds and targets are photographs train against that and measure it (``reproduce``
tracks a held-out photograph set beside the textured levels). With ``background="photo"`` (or ``"mixed"``: each sequence drawn one way or the
other; ``"photo-heldout"`` takes the photographs no training set uses) the generator cuts the RGB background from one photograph, the target's appearance from another, and the
thermal background's structure from the luminance of a third (blurred, scaled to the scene's temperature range:
still no pixel-wise function maps RGB to TIR). Everything else (motion, offsets, challenges, the warm target) is
as with textures.

The photographs are the ones scikit-image ships inside its package (read from disk, never downloaded).
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import PMATrackError

# Two pools: training sets draw from the first, the held-out photograph set (``background="photo-heldout"``) from the
# second, so that a network is tested on scenes and objects it never saw.
SCENES = {"train": ("astronaut.png", "coffee.png", "rocket.jpg", "brick.png", "grass.png", "camera.png",
                    "clock_motion.png"),
          "heldout": ("chelsea.png", "motorcycle_left.png", "gravel.png", "coins.png")}
OBJECTS = {"train": ("coffee.png", "astronaut.png", "rocket.jpg"),
           "heldout": ("chelsea.png", "motorcycle_right.png")}


def photo_folder() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise PMATrackError("photo backgrounds need scikit-image's bundled photographs: pip install scikit-image")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 255] (grey photographs repeated over the channels)."""
    path = photo_folder() / name
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PMATrackError(f"{path}: cannot read this photograph (scikit-image's data folder is incomplete)")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    img.setflags(write=False)                              # shared by every caller: never modified in place
    return img


def random_crop(rng: np.random.Generator, name: str, size: tuple, scale: tuple = (0.4, 1.0)) -> np.ndarray:
    """A crop of photograph ``name`` with the aspect of ``size`` (W, H), ``scale`` x the largest such crop,
    at a random place, resized to ``size``: (H, W, 3) float32."""
    img = load_photo(name)
    H, W = img.shape[:2]
    w, h = size
    fit = min(W / w, H / h)                                # largest crop of this aspect
    s = fit * rng.uniform(*scale)
    cw, ch = max(2, int(round(w * s))), max(2, int(round(h * s)))
    x, y = int(rng.integers(0, W - cw + 1)), int(rng.integers(0, H - ch + 1))
    interp = cv2.INTER_AREA if cw > w else cv2.INTER_LINEAR
    return cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=interp)


def photo_appearance(rng: np.random.Generator, rgb_size: tuple, canvas_size: tuple, pool: str = "train") -> dict:
    """One sequence's photographic appearance from ``pool`` (train | heldout): ``background`` (H, W, 3) RGB,
    ``target`` and ``look_alike`` (32, 32, 3) RGB patches (the look-alike: another crop of the target's photograph,
    recoloured a little), ``thermal`` (Hc, Wc) in [0.25, 0.55] from another scene's luminance, and the names."""
    scenes, objects = SCENES[pool], OBJECTS[pool]
    scene, thermal_src = (scenes[int(i)] for i in rng.choice(len(scenes), 2, replace=False))
    obj = objects[int(rng.integers(len(objects)))]
    background = random_crop(rng, scene, rgb_size)
    target = random_crop(rng, obj, (32, 32), scale=(0.15, 0.4))
    look_alike = np.clip(random_crop(rng, obj, (32, 32), scale=(0.15, 0.4)) * rng.uniform(0.8, 1.2, 3), 0, 255)
    lum = random_crop(rng, thermal_src, canvas_size).mean(axis=2)
    lum = cv2.GaussianBlur(lum, (0, 0), 3.0)
    lum = (lum - lum.min()) / max(float(lum.max() - lum.min()), 1e-6)
    return dict(background=background, target=target.astype(np.float32), look_alike=look_alike.astype(np.float32),
                thermal=(0.25 + 0.30 * lum).astype(np.float32),
                photos=dict(background=scene, target=obj, thermal=thermal_src))
