"""Render the synthetic "warm-up airplanes" video dataset (yaw / pitch / roll) as mp4 files.

The GRW paper illustrates its idea on videos of a model airplane spinning about one of its own axes
from a random initial pose. Because the initial orientation is uniform over all rotations, every
single frame shows a uniformly random orientation whatever the class: only the motion between frames
tells yaw, pitch and roll apart.

The airplane is a handful of ellipsoids and boxes, ray-cast in numpy (orthographic camera, Lambertian
shading, two-tone colours so up/down and left/right are visible), with a little camera jitter and pixel
noise. Videos are written in the Kinetics layout ``ROOT/{train,val,test}/<class>/<id>.mp4`` next to a
``dataset.json`` with the generation parameters; a second call with the same parameters does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import decord
import numpy as np
from tqdm import tqdm

from benchmarks.core.store import write_text
from benchmarks.data.videofile import write_mp4

CLASSES = ("yaw", "pitch", "roll")
SPLITS = ("train", "val", "test")
VERSION = 1  # bump when the airplane, the camera or the seeding changes: existing datasets regenerate

# Body frame: x points to the nose, y to the left wing, z up. The class names the body axis of rotation.
ROTATION_AXIS = {"yaw": 2, "pitch": 1, "roll": 0}


@dataclass(frozen=True)
class Part:
    """One solid of the airplane: an ellipsoid (``size`` = semi-axes) or a box (``size`` = half-extents).

    Surfaces whose body-frame normal points up get ``top`` colour, the others ``bottom`` (RGB in [0, 1]).
    """

    name: str
    shape: str
    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]


AIRPLANE: tuple[Part, ...] = (
    Part("fuselage", "ellipsoid", (0.0, 0.0, 0.0), (1.0, 0.13, 0.13), (0.95, 0.95, 0.97), (0.45, 0.48, 0.55)),
    Part("canopy", "ellipsoid", (0.38, 0.0, 0.09), (0.22, 0.075, 0.08), (0.10, 0.20, 0.45), (0.10, 0.20, 0.45)),
    Part("left wing", "box", (0.05, 0.52, 0.0), (0.17, 0.42, 0.025), (0.90, 0.15, 0.12), (0.45, 0.08, 0.06)),
    Part("right wing", "box", (0.05, -0.52, 0.0), (0.17, 0.42, 0.025), (0.15, 0.75, 0.20), (0.07, 0.38, 0.10)),
    Part("tailplane", "box", (-0.82, 0.0, 0.02), (0.09, 0.32, 0.02), (0.95, 0.60, 0.10), (0.50, 0.30, 0.05)),
    Part("fin", "box", (-0.84, 0.0, 0.21), (0.10, 0.02, 0.21), (0.95, 0.85, 0.10), (0.95, 0.85, 0.10)),
)


@dataclass(frozen=True)
class RenderParams:
    """Camera, motion and image statistics shared by every video (saved in ``dataset.json``)."""

    speed_deg: tuple[float, float] = (8.0, 20.0)  # angular speed range, degrees per frame (sign is random)
    view_half_width: float = 1.2  # half the image width in body units (the nose is 1.0 from the centre)
    offset_jitter: float = 0.08  # per-video shift of the airplane centre, body units
    zoom_jitter: float = 0.1  # per-video zoom in [1 - z, 1 + z]
    shake: float = 0.01  # per-frame camera shake (std), body units
    noise: float = 3.0  # per-pixel Gaussian noise (std), 0..255 scale
    light: tuple[float, float, float] = (-0.4, 0.6, 0.7)  # direction to the light, camera frame
    ambient: float = 0.35
    sky_top: tuple[float, float, float] = (0.55, 0.72, 0.92)
    sky_bottom: tuple[float, float, float] = (0.85, 0.90, 0.96)
    supersample: int = 2  # rays per pixel along each axis (anti-aliasing)


RENDER = RenderParams()


# --- rotations --------------------------------------------------------------------------------------


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly over all rotations (Haar measure): a normalised Gaussian quaternion."""
    w, x, y, z = _unit(rng.standard_normal(4))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def axis_rotations(axis: int, angles: np.ndarray) -> np.ndarray:
    """Rotations by ``angles`` (radians) about coordinate ``axis`` (0, 1, 2 = x, y, z): ``[T, 3, 3]``."""
    i, j = [k for k in range(3) if k != axis]
    cos, sin = np.cos(angles), np.sin(angles)
    rotations = np.zeros((len(angles), 3, 3))
    rotations[:, axis, axis] = 1.0
    rotations[:, i, i], rotations[:, i, j] = cos, -sin
    rotations[:, j, i], rotations[:, j, j] = sin, cos
    return rotations


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- ray casting ------------------------------------------------------------------------------------


def _hit_ellipsoid(origins: np.ndarray, direction: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the ellipsoid (inf on a miss) and the body-frame normal there."""
    centre, radii = np.asarray(part.centre), np.asarray(part.size)
    p, q = (origins - centre) / radii, direction / radii  # the ellipsoid becomes the unit sphere
    a = (q * q).sum(-1)
    b = 2 * (p * q).sum(-1)
    c = (p * p).sum(-1) - 1
    disc = b * b - 4 * a * c
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    points = origins + np.where(np.isfinite(t), t, 0)[..., None] * direction
    return t, _unit((points - centre) / radii**2)


def _hit_box(origins: np.ndarray, direction: np.ndarray, part: Part) -> tuple[np.ndarray, np.ndarray]:
    """Slab test: distance along each ray to the box (inf on a miss) and the body-frame normal there."""
    centre, half = np.asarray(part.centre), np.asarray(part.size)
    direction = np.where(np.abs(direction) < 1e-12, 1e-12, direction)  # rays parallel to a face
    t1 = (centre - half - origins) / direction
    t2 = (centre + half - origins) / direction
    t_enter, t_exit = np.minimum(t1, t2), np.maximum(t1, t2)
    near, far = t_enter.max(-1), t_exit.min(-1)
    t = np.where(near <= far, near, np.inf)
    face = np.eye(3)[t_enter.argmax(-1)]  # the axis whose slab the ray entered last
    return t, -np.sign(direction) * face


def _half_extent(part: Part, pose: np.ndarray) -> np.ndarray:
    """Half-width and half-height of the part's image-plane bounding box (orthographic projection)."""
    axes = pose[:2] * np.asarray(part.size)  # the part's axes as seen from the camera
    if part.shape == "ellipsoid":
        return np.sqrt((axes**2).sum(1))
    return np.abs(axes).sum(1)


_HIT = {"ellipsoid": _hit_ellipsoid, "box": _hit_box}


def _render_frame(
    pose: np.ndarray, offset: np.ndarray, half_width: float, size: int, params: RenderParams
) -> np.ndarray:
    """Ray-cast the airplane in one pose: float RGB image ``[size, size, 3]`` in [0, 1].

    ``pose`` is the body-to-camera rotation, ``offset`` the airplane centre in the image plane and
    ``half_width`` half the field of view, both in body units. The camera looks down -z
    (orthographic), image x right, y up. Each part only casts the rays inside its bounding box.
    """
    n = size * params.supersample
    coords = ((np.arange(n) + 0.5) / n * 2 - 1) * half_width  # pixel centres, left to right / bottom to top
    direction = -pose[2]  # R^T (0, 0, -1): every ray, in the body frame

    depth = np.full((n, n), np.inf)
    normals = np.zeros((n, n, 3))
    albedo = np.zeros((n, n, 3))
    for part in AIRPLANE:
        centre = pose[:2] @ part.centre + offset
        extent = _half_extent(part, pose)
        (x0, x1), (y0, y1) = (np.searchsorted(coords, [c - e, c + e]) for c, e in zip(centre, extent))
        if x0 == x1 or y0 == y1:
            continue
        x, y = np.meshgrid(coords[x0:x1] - offset[0], coords[y0:y1] - offset[1])
        origins = np.stack([x, y, np.full_like(x, 10.0)], -1) @ pose  # row vectors: R^T o
        t, normal = _HIT[part.shape](origins, direction, part)

        block = (slice(y0, y1), slice(x0, x1))
        closer = t < depth[block]
        depth[block][closer] = t[closer]
        normals[block][closer] = normal[closer]
        albedo[block][closer] = np.where(normal[closer][:, 2:] >= 0, part.top, part.bottom)

    lambert = np.clip(normals @ (pose.T @ _unit(np.asarray(params.light))), 0, None)  # n . (R^T light)
    lit = albedo * (params.ambient + (1 - params.ambient) * lambert)[..., None]
    height = (coords / half_width + 1) / 2  # 0 at the bottom row, 1 at the top row
    sky = np.outer(height, params.sky_top) + np.outer(1 - height, params.sky_bottom)
    image = np.where(np.isfinite(depth)[..., None], lit, sky[:, None, :])

    s = params.supersample
    image = sum(image[i::s, j::s] for i in range(s) for j in range(s)) / s**2  # average s x s rays per pixel
    return image[::-1]  # image rows go downwards


# --- videos -----------------------------------------------------------------------------------------


def render_video(
    cls: str,
    rng_or_seed: np.random.Generator | int | Sequence[int],
    frames: int = 16,
    size: int = 112,
    params: RenderParams = RENDER,
) -> np.ndarray:
    """One video of the airplane spinning about its ``cls`` axis: uint8 ``[frames, size, size, 3]``.

    Pure function of its arguments: the same seed gives the same pixels. The initial orientation is
    uniform over rotations, the angular speed uniform in ``params.speed_deg`` with a random sign.
    """
    if cls not in CLASSES:
        raise ValueError(f"cls must be one of {CLASSES}, got {cls!r}")
    if frames < 1 or size < 1:
        raise ValueError(f"expected frames >= 1 and size >= 1, got frames={frames}, size={size}")
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)

    start = random_rotation(rng)
    speed = np.deg2rad(rng.uniform(*params.speed_deg)) * rng.choice([-1.0, 1.0])
    poses = start @ axis_rotations(ROTATION_AXIS[cls], speed * np.arange(frames))  # spin in the body frame

    zoom = rng.uniform(1 - params.zoom_jitter, 1 + params.zoom_jitter)
    centre = rng.uniform(-params.offset_jitter, params.offset_jitter, size=2)
    offsets = centre + rng.normal(0, params.shake, size=(frames, 2))

    half_width = params.view_half_width / zoom
    image = np.stack([_render_frame(pose, shift, half_width, size, params) for pose, shift in zip(poses, offsets)])
    image = image * 255 + rng.normal(0, params.noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --- the dataset ------------------------------------------------------------------------------------


def video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one video: a function of (seed, split, index) only, so subsets agree."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def video_class(index: int) -> str:
    """Classes take turns, so every split is balanced (counts differ by at most one)."""
    return CLASSES[index % len(CLASSES)]


def video_path(root: Path, split: str, index: int) -> Path:
    return root / split / video_class(index) / f"{split}_{index:05d}.mp4"


def describe(
    n_train: int = 1000,
    n_val: int = 100,
    n_test: int = 100,
    frames: int = 16,
    size: int = 112,
    fps: int = 8,
    seed: int = 0,
) -> dict:
    """The ``dataset.json`` of a dataset generated with these parameters."""
    return {
        "name": "warmup-airplanes",
        "version": VERSION,
        "seed": seed,
        "classes": list(CLASSES),
        "videos": {"train": n_train, "val": n_val, "test": n_test},
        "frames": frames,
        "size": size,
        "fps": fps,
        "render": asdict(RENDER),
    }


def write_video(root: Path, split: str, index: int, seed: int, frames: int, size: int, fps: int) -> Path:
    """Render video ``index`` of ``split`` and write it to its place under ``root``."""
    video = render_video(video_class(index), video_rng(seed, split, index), frames, size)
    return write_mp4(video_path(root, split, index), video, fps)


# Test splits of one speed each, for methods whose cost depends on the video (VA-RED2): the airplane
# standing still, turning at the slow end of the training range, and at its fast end (degrees per frame).
SPEED_SPLITS: dict[str, tuple[float, float]] = {"test_static": (0.0, 0.0), "test_slow": (8.0, 10.0),
                                                "test_fast": (18.0, 20.0)}


def generate_speed_splits(root: str | Path, n: int = 60, frames: int = 16, size: int = 112, fps: int = 8,
                          seed: int = 0) -> dict[str, Path]:
    """Write ``ROOT/<split>/<class>/<id>.mp4`` for every split of :data:`SPEED_SPLITS`: ``n`` videos each,
    drawn as the test split's (same poses and jitter; only the speed range differs), evaluable with
    ``eval --split test_slow`` and so on. Rendered again each call."""
    root = Path(root)
    written = {}
    for split, speed in SPEED_SPLITS.items():
        params = replace(RENDER, speed_deg=speed)
        for index in tqdm(range(n), f"airplanes {split}", unit="video"):
            video = render_video(video_class(index), video_rng(seed, "test", index), frames, size, params)
            write_mp4(root / split / video_class(index) / f"{split}_{index:05d}.mp4", video, fps)
        written[split] = root / split
    return written


def check_decodes(path: Path, frames: int, size: int) -> None:
    """Raise RuntimeError unless decord, the reader of the training pipeline, reads the video back whole."""
    try:
        reader = decord.VideoReader(str(path))
        shape = tuple(reader.get_batch(list(range(len(reader)))).shape)
    except decord.DECORDError as error:
        raise RuntimeError(
            f"decord cannot read {path} ({size}x{size} px); decord 0.6 fails on some small frame sizes "
            "(16, 24, 48 and 72 px among them): choose another size"
        ) from error
    if shape != (frames, size, size, 3):
        raise RuntimeError(f"{path} decodes to {list(shape)}, expected {[frames, size, size, 3]}")


def generate(
    root: str | Path,
    n_train: int = 1000,
    n_val: int = 100,
    n_test: int = 100,
    frames: int = 16,
    size: int = 112,
    fps: int = 8,
    seed: int = 0,
) -> Path:
    """Write the dataset under ``root`` (Kinetics layout) and return ``root``.

    Does nothing when ``root/dataset.json`` already describes these parameters; otherwise renders every
    video again and removes videos left over from a different generation. ``dataset.json`` is written
    last, so an interrupted run is redone in full next time.
    """
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if min(counts.values()) < 0 or frames < 1 or fps < 1 or size < 2 or size % 2:
        raise ValueError(
            f"expected video counts >= 0, frames >= 1, fps >= 1 and an even size >= 2, got {counts}, "
            f"frames={frames}, fps={fps}, size={size}"
        )
    root = Path(root)
    manifest = root / "dataset.json"
    wanted = describe(n_train, n_val, n_test, frames, size, fps, seed)
    if _read_manifest(manifest) == json.loads(json.dumps(wanted)):  # compared as JSON: tuples become lists
        return root
    manifest.unlink(missing_ok=True)  # a regeneration cut short must not look complete

    videos = [(split, index) for split, count in counts.items() for index in range(count)]
    _remove_stale_videos(root, {video_path(root, split, index) for split, index in videos})
    for i, (split, index) in enumerate(tqdm(videos, f"airplanes -> {root}", unit="video")):
        path = write_video(root, split, index, seed, frames, size, fps)
        if i == 0:  # read the first one back, so an unreadable setting fails in seconds, not after the lot
            check_decodes(path, frames, size)

    write_text(manifest, json.dumps(wanted, indent=2) + "\n")
    return root


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _remove_stale_videos(root: Path, keep: set[Path]) -> None:
    """Delete the videos of an earlier generation that this one does not overwrite (only in our layout)."""
    for split in SPLITS:
        for cls in CLASSES:
            for path in (root / split / cls).glob("*.mp4"):
                if path not in keep:
                    path.unlink()
