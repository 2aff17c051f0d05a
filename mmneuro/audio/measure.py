"""Images and features of a session's syllables, measured in batches from one FFT call per syllable.

Per syllable the samples under its image window are read once (one open file per batch), the image
columns' frames and the feature frames (every hop inside the syllable) go through one
:func:`band_power_db` call, and their levels (dB above the noise floor) are split between
:func:`image_from_levels` and :func:`features_from_levels`. Batches let a caller write each one out
and drop it, so memory does not grow with the number of syllables; ``params["workers"]`` threads
measure batches at once (the time goes into FFTs and array operations, which release the GIL).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from tqdm import tqdm

from mmneuro.audio.features import FEATURES, feature_centres, features_from_levels
from mmneuro.audio.spectrogram import image_centres, image_from_levels, image_rows
from mmneuro.audio.stft import FrameGrid, band_power_db, frames_centred_at, ordered_map
from mmneuro.audio.wav import WavInfo, span_reader

# Syllables per batch: 64 images of 128 x 128 float32 are 4 MiB.
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
    n = len(onset_s)

    def measure(start: int) -> Batch:
        # Each batch reads through its own file handle, so batches can run on threads at once.
        stop = min(start + batch_size, n)
        images = np.empty((stop - start, params["n_freq"], params["n_time"]), dtype=np.float32)
        features = {name: np.empty(stop - start) for name in FEATURES}
        with span_reader(wav) as read:
            for k, (onset, offset) in enumerate(zip(onset_s[start:stop], offset_s[start:stop])):
                columns = image_centres(onset, offset, grid, params)
                inside = feature_centres(onset, offset, grid)
                centres = np.concatenate([columns, inside])
                # The frames' first and last samples, plus any window padding outside the file.
                first = int(centres.min()) - grid.nperseg // 2
                samples = read(first, int(centres.max()) - grid.nperseg // 2 + grid.nperseg)
                level_db = band_power_db(frames_centred_at(samples, first, centres, grid), grid)
                level_db -= floor_db
                images[k] = image_from_levels(level_db[:len(columns)], rows, params)
                for name, value in features_from_levels(level_db[len(columns):], inside, grid).items():
                    features[name][k] = value
        return Batch(start, images, features)

    bar = tqdm(total=n, desc=f"spectrograms {wav.path.name}", unit="syll", file=sys.stderr,
               disable=not progress, leave=False)
    with bar:
        for batch in ordered_map(measure, range(0, n, batch_size), params.get("workers", 1)):
            bar.update(len(batch.images))
            yield batch
