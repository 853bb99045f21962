"""Search keys: what a search plans and prunes with, made once per image from its tensor.

Flows in: tensors, (k, px, px, 3) uint8. Flows out: ``ImageKeys`` per image, the blobs of its
``search_keys`` row (the pixel search's identity key, coarse vector, orbit features and sample)
and of its ``tone_keys`` and ``rank_keys`` rows (the tone and rank signals). Pure numpy.

Made where the tensor is made, in the decoding workers, so a cold search reads ~2 KB of keys per
image instead of every tensor, on both cores instead of one; a search makes the keys of images
that have none (an index older than this, a tensor copied from another row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgindex.compare import kernel, signals, space

TONE_RECIPE = "tone-2"  # how tone_keys rows were made: keys of another recipe are made again, never mixed
RANK_RECIPE = "rank-1"  # the same for rank_keys (the rank signal: the tone of the luminance's ranks)


def signal_table(rank: bool) -> tuple[str, str]:
    """(table, recipe) of the keys of the tone signal or of the rank signal."""
    return ("rank_keys", RANK_RECIPE) if rank else ("tone_keys", TONE_RECIPE)


@dataclass(frozen=True)
class ImageKeys:
    """One image's keys, as stored. ``tone``/``rank``: b"" for an image with no tone, None where the
    tensor is too large for the signal."""

    mean: float
    ikey: bytes
    coarse: bytes
    orbits: bytes
    sample: bytes
    tone: bytes | None
    rank: bytes | None


@dataclass(frozen=True)
class PixelKeys:
    """The pixel search's keys of some images, in the order given."""

    mean: np.ndarray  # (k,) float64: mean channel value
    ikey: np.ndarray  # (k, 6) int64: channel sums, then sums of squares (the same in every orientation)
    coarse: np.ndarray  # (k, g, g, 3) float64
    orbits: np.ndarray  # (k, m) float32
    sample: np.ndarray  # (k, s, s, 3) uint8

    def row(self, i: int) -> tuple[float, bytes, bytes, bytes, bytes]:
        """(mean, ikey, coarse, orbits, sample) of the i-th image, as the search_keys columns."""
        return (float(self.mean[i]), self.ikey[i].tobytes(), self.coarse[i].tobytes(), self.orbits[i].tobytes(),
                self.sample[i].tobytes())


def pixel_keys(images: np.ndarray, px_size: int) -> PixelKeys:
    """The pixel search's keys of ``images``: what plans its buckets, bounds its pairs and samples them."""
    edges = kernel.grid_edges(px_size)
    blocks = kernel.block_sums(images, edges)
    coarse = kernel.coarse(images, edges, blocks)
    sums = blocks.sum(axis=(1, 2))
    values = images.reshape(len(images), -1, 3).astype(np.float64)  # squares summed in float64: exact below 2^53
    squares = np.einsum("kvc,kvc->kc", values, values).astype(np.int64)
    return PixelKeys(mean=sums.sum(axis=1) / values[0].size, ikey=np.concatenate([sums, squares], axis=1),
                     coarse=coarse, orbits=space.orbit_features(coarse).astype(np.float32),
                     sample=kernel.sample(images))


def tone_blobs(images: np.ndarray, px_size: int, *, rank: bool = False) -> list[bytes]:
    """Each image's tone (``rank``: rank) key blob, b"" for no tone (``signals.ToneUnavailable`` for
    tensors too large for the signal)."""
    t = signals.tones(images, rank=rank)
    coarse = signals.coarse(t, px_size).astype(np.float32)
    return [c.tobytes() if has else b"" for c, has in zip(coarse, t.has_tone)]


def of_tensors(images: np.ndarray, px_size: int) -> list[ImageKeys]:
    """Every key of each image, for the decoding workers."""
    pixels = pixel_keys(images, px_size)
    none = [None] * len(images)
    tone = tone_blobs(images, px_size) if px_size <= signals.MAX_PX else none
    rank = tone_blobs(images, px_size, rank=True) if px_size <= signals.RANK_MAX_PX else none
    return [ImageKeys(*pixels.row(i), tone[i], rank[i]) for i in range(len(images))]
