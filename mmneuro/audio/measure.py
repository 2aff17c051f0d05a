"""Images and features of a session's syllables, measured in batches from one FFT call per syllable.

Per syllable the samples under its image window are read once (one open file per batch), and the
image columns' frames and the feature frames (every hop inside the syllable) go through one
:func:`band_power` call; the columns' power relative to the noise floor makes the batch's images in
one :func:`images_from_power` call, the feature frames' levels (dB above the floor) go to
:func:`features_from_levels`. Batches let a caller write each one out
and drop it, so memory does not grow with the number of syllables; ``params["workers"]`` threads
measure batches at once (the time goes into FFTs and array operations, which release the GIL).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mmneuro.audio.features import FEATURES, feature_centres, features_from_levels
from mmneuro.audio.spectrogram import image_centres, image_rows, images_from_power
from mmneuro.audio.stft import FrameGrid, band_power, frames_centred_at, ordered_map, power_db
from mmneuro.audio.wav import WavInfo, span_reader

# Syllables per batch: 64 images of 128 x 128 float32 are 4 MiB (their columns' band power, 11 MiB, while
# they are made).
BATCH_SYLLABLES = 64


@dataclass(frozen=True)
class Batch:
    """Measurements of syllables ``start, start + 1, ...`` (in the order they were given)."""

    start: int
    images: np.ndarray  # (n, n_freq, n_time) float32 in [0, 1]
    features: dict[str, np.ndarray]  # name in FEATURES -> (n,) float64

    @property
    def stop(self) -> int:
        return self.start + len(self.images)


def iter_measurements(wav: WavInfo, onset_s: np.ndarray, offset_s: np.ndarray, floor_db: np.ndarray,
                      grid: FrameGrid, params: dict, progress: bool = False,
                      batch_size: int | None = None) -> Iterator[Batch]:
    """Yield :class:`Batch` es covering the syllables [onset_s, offset_s] (s, audio clock) in order.

    floor_db: noise floor per band bin (dB), as the segmenter's; params: the audio parameters;
    batch_size: syllables per batch (default BATCH_SYLLABLES).
    """
    batch_size = batch_size or BATCH_SYLLABLES
    rows = image_rows(grid, params)
    floor_inverse = np.power(np.float32(10.0), -floor_db.astype(np.float32) / np.float32(10.0))
    n = len(onset_s)

    def measure(start: int) -> Batch:
        # Each batch reads through its own file handle, so batches can run on threads at once.
        stop = min(start + batch_size, n)
        columns = np.empty((stop - start, params["n_time"], len(grid.freq_hz)), dtype=np.float32)
        features = {name: np.empty(stop - start) for name in FEATURES}
        with span_reader(wav) as read:
            for k, (onset, offset) in enumerate(zip(onset_s[start:stop], offset_s[start:stop])):
                image_at = image_centres(onset, offset, grid, params)
                inside = feature_centres(onset, offset, grid)
                centres = np.concatenate([image_at, inside])
                # The frames' first and last samples, plus any window padding outside the file.
                first = int(centres.min()) - grid.nperseg // 2
                samples = read(first, int(centres.max()) - grid.nperseg // 2 + grid.nperseg)
                power = band_power(frames_centred_at(samples, first, centres, grid), grid)
                np.multiply(power[:len(image_at)], floor_inverse, out=columns[k])
                level_db = power_db(power[len(image_at):])
                level_db -= floor_db
                for name, value in features_from_levels(level_db, inside, grid).items():
                    features[name][k] = value
        return Batch(start, images_from_power(columns, rows, params), features)

    bar = tqdm(total=n, desc=f"spectrograms {wav.path.name}", unit="syll", file=sys.stderr,
               disable=not progress, leave=False)
    # One BLAS thread per matrix product: the workers are the parallelism, and OpenBLAS's own threads
    # would spin on the cores that the FFTs need (measuring took 1.7x the CPU time with them, one worker).
    with bar, threadpool_limits(1, user_api="blas"):
        for batch in ordered_map(measure, range(0, n, batch_size), params.get("workers", 1)):
            bar.update(len(batch.images))
            yield batch
