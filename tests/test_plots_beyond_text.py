"""lmcourse.plots.beyond_text: images, raster order, waveforms and spectrograms."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lmcourse.data import dequantise, quantised_tones, shape_images
from lmcourse.plots.beyond_text import (
    plot_image_rows,
    plot_raster_order,
    plot_spectrograms,
    plot_waveforms,
)


def test_raster_order_hides_the_future():
    img = shape_images(1, size=8)[0]
    fig = plot_raster_order(img, t=20)
    shown = fig.axes[0].images[0].get_array()
    assert shown.mask.reshape(-1)[20:].all()  # pixels from t on are hidden
    np.testing.assert_array_equal(np.asarray(shown).reshape(-1)[:20], img.reshape(-1)[:20].numpy())
    assert len(fig.axes[0].texts) == 64
    with pytest.raises(ValueError):
        plot_raster_order(img, t=64)
    plt.close(fig)


def test_image_rows_draw_every_image():
    imgs = shape_images(5, size=8)
    fig = plot_image_rows([imgs, imgs[:3]], ["a", "b"], ncols=5)
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(drawn) == 8
    np.testing.assert_array_equal(drawn[0], imgs[0].numpy())
    with pytest.raises(ValueError):
        plot_image_rows([imgs], ["a", "b"])
    plt.close(fig)


def test_waveforms_and_spectrograms():
    tones, freqs = quantised_tones(2, 1024, levels=64, return_freqs=True, generator=torch.Generator().manual_seed(0))
    waves = [dequantise(t, 64).numpy() for t in tones]
    fig = plot_waveforms(waves, ["a", "b"], sample_rate=8000, prompt_len=64)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), waves[0])
    assert line.get_xdata()[-1] == pytest.approx(1023 / 8000 * 1000)
    plt.close(fig)
    fig = plot_spectrograms(waves, ["a", "b"], sample_rate=8000, nfft=128)
    assert len(fig.axes[0].images) == 1
    # the brightest row of the spectrogram is the tone's frequency (bins of 62.5 Hz)
    spec = fig.axes[0].images[0].get_array()
    extent = fig.axes[0].images[0].get_extent()
    n_rows = spec.shape[0]
    row = int(np.argmax(np.asarray(spec).mean(axis=1)))
    hz = extent[2] + (extent[3] - extent[2]) * (n_rows - 1 - row + 0.5) / n_rows
    assert abs(hz - float(freqs[0])) < 100
    plt.close(fig)
