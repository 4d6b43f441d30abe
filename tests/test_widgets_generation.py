"""The autoregressive loop stepper builds headless and follows its controls."""

import matplotlib.pyplot as plt
import pytest
import torch

from lmcourse.model import GPT, GPTConfig
from lmcourse.sampling import SamplingConfig
from lmcourse.tokenization import CharTokenizer
from lmcourse.widgets.generation import LoopStepper


@pytest.fixture()
def stepper():
    tok = CharTokenizer.from_text("abcdefgh \n")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    return LoopStepper.from_model(
        model, tok, "abc", n_steps=6, sampling=SamplingConfig(temperature=0.9), k=3,
        generator=torch.Generator().manual_seed(1),
    )


def test_builds_and_follows_slider(stepper):
    assert stepper.step == 0 and stepper.renders == 1
    assert "step 1 of 6" in stepper.text.value
    stepper.slider.value = 3  # as a user would
    assert stepper.step == 3 and stepper.renders == 2
    assert "step 4 of 6" in stepper.text.value
    stepper.update(5)
    assert stepper.slider.value == 5 and stepper.renders == 3
    stepper.update(5)  # same value still redraws
    assert stepper.renders == 4


def test_buttons(stepper):
    stepper.next_button.click()
    assert stepper.step == 1
    stepper.prev_button.click()
    stepper.prev_button.click()  # clamps at 0
    assert stepper.step == 0
    stepper.update(5)
    stepper.next_button.click()  # clamps at the last step
    assert stepper.step == 5


def test_text_escapes_and_figure(stepper):
    assert "<pre" in stepper.text.value
    fig = stepper.figure()
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) >= 3
    assert "step 1" in fig.axes[0].get_title()
    plt.close(fig)
