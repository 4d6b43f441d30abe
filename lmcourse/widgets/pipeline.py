"""The pipeline stepper: one chat request from JSON messages to the reassembled reply.

Chapter 14 (from API call to token stream) uses it. :func:`run_pipeline` performs the five
stages with the real package functions (``lmcourse.chat``, a tokenizer,
``lmcourse.generate``) and records every intermediate result in a :class:`PipelineTrace`;
:class:`PipelineStepper` shows one stage at a time under a control.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from ..chat import TEMPLATES, apply_chat_template, encode_chat
from ..generate import generate
from ..plots.pipeline import STAGES, plot_pipeline_stage
from ..sampling import SamplingConfig
from .base import Explorer

__all__ = ["PipelineTrace", "end_marker", "reassemble", "run_pipeline", "PipelineStepper"]


@dataclass
class PipelineTrace:
    """Everything one chat request goes through, stage by stage.

    Attributes:
        messages: the request's messages (role/content dicts).
        request_json: the request body as an API client would send it.
        template: the chat-template name used.
        prompt: the rendered template string (ending with the assistant header).
        specials: the tokenizer's special-token strings.
        prompt_ids, prompt_tokens: the prompt's token ids and their strings.
        new_ids, new_tokens: the generated token ids and their strings.
        raw_output: the decoded generated tokens, template markers included.
        reply: the reassembled reply (cut at the end-of-turn marker, stripped).
        finish_reason: ``"stop"`` (end-of-turn token) or ``"length"`` (token limit).
        response_json: the response body: the reply and the token usage.
    """

    messages: list[dict]
    request_json: str
    template: str
    prompt: str
    specials: list[str]
    prompt_ids: list[int]
    prompt_tokens: list[str]
    new_ids: list[int]
    new_tokens: list[str]
    raw_output: str
    reply: str
    finish_reason: str
    response_json: str


def end_marker(template: str) -> str:
    """The end-of-turn string of a template (``<|im_end|>`` for ChatML)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
    return TEMPLATES[template].end


def reassemble(raw_output: str, template: str = "chatml") -> str:
    """The assistant's reply from the decoded generated text.

    The prompt ended with the assistant header, so the model's output *is* the reply up to
    the template's end-of-turn marker; anything after it is dropped, and surrounding
    whitespace is stripped.
    """
    return raw_output.split(end_marker(template), 1)[0].strip()


def run_pipeline(
    messages: Sequence[dict],
    model: Any,
    tokenizer: Any,
    template: str = "chatml",
    max_new_tokens: int = 40,
    sampling: Optional[SamplingConfig] = None,
    model_name: str = "lmcourse-demo",
    generator: Optional[torch.Generator] = None,
) -> PipelineTrace:
    """Run one chat request through the five stages and record them.

    1. messages -> request JSON; 2. ``apply_chat_template`` with the generation prompt;
    3. ``tokenizer.encode`` (special markers become single ids); 4. ``generate``, stopping
    at the template's end-of-turn token when the tokenizer has it; 5. decode and
    :func:`reassemble`.

    Args:
        messages: role/content dicts, as for :func:`lmcourse.chat.apply_chat_template`.
        model: an lmcourse GPT.
        tokenizer: a tokenizer with ``encode``/``decode``/``special_tokens``.
        template: chat-template name.
        max_new_tokens: token limit of the reply.
        sampling: decoding settings (default greedy, temperature 0).
        model_name: the ``"model"`` field of the request JSON.
        generator: random generator for sampling.
    """
    messages = [dict(m) for m in messages]
    sampling = SamplingConfig(temperature=0.0) if sampling is None else sampling
    request = {"model": model_name, "messages": messages, "max_tokens": max_new_tokens,
               "temperature": sampling.temperature}
    prompt = apply_chat_template(messages, template, add_generation_prompt=True)
    # template markers become control ids; message contents can never produce one
    prompt_ids = encode_chat(messages, tokenizer, template, add_generation_prompt=True)[0].tolist()
    end = end_marker(template)
    eos = tokenizer.special_tokens.get(end)
    out = generate(model, prompt_ids, max_new_tokens, sampling, eos_token_id=eos,
                   tokenizer=tokenizer, generator=generator)
    new_ids = out.new_tokens[0]
    raw = tokenizer.decode(new_ids)
    reply = reassemble(raw, template)
    finish = "stop" if out.finish_reasons[0] == "eos" else out.finish_reasons[0]
    response = {
        "model": model_name,
        "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": finish}],
        "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(new_ids),
                  "total_tokens": len(prompt_ids) + len(new_ids)},
    }
    return PipelineTrace(
        messages=messages,
        request_json=json.dumps(request, indent=2),
        template=template,
        prompt=prompt,
        specials=sorted(tokenizer.special_tokens),
        prompt_ids=prompt_ids,
        prompt_tokens=[tokenizer.decode([i]) for i in prompt_ids],
        new_ids=list(new_ids),
        new_tokens=[tokenizer.decode([i]) for i in new_ids],
        raw_output=raw,
        reply=reply,
        finish_reason=finish,
        response_json=json.dumps(response, indent=2),
    )


class PipelineStepper(Explorer):
    """Step through a :class:`PipelineTrace` one stage at a time.

    Args:
        trace: the recorded request (from :func:`run_pipeline`).
        step: the stage shown first (default 2: the prompt's token ids).
        width: line width of the token strips, in character cells.

    ``widget`` is the ipywidgets box to display; ``update(step)`` changes the stage without
    a browser; ``figure()`` draws the current stage statically (what the HTML shows).
    """

    def __init__(self, trace: PipelineTrace, step: int = 2, width: float = 48.0) -> None:
        self.trace = trace
        self.width = width
        self.slider = widgets.IntSlider(value=step, min=0, max=len(STAGES) - 1, step=1,
                                        description="stage", continuous_update=False)
        self.info = widgets.HTML()
        self.out = widgets.Output()
        self.renders = 0
        self.slider.observe(self._on_change, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.info]), self.out])
        self._apply(int(self.slider.value))

    @property
    def step(self) -> int:
        return self._step

    @property
    def stage(self) -> str:
        """Name of the current stage."""
        return STAGES[self._step]

    def update(self, step: int) -> None:
        """Show stage ``step`` (moves the slider, redraws)."""
        if not 0 <= int(step) < len(STAGES):
            raise ValueError(f"step must be in [0, {len(STAGES) - 1}], got {step}")
        if int(self.slider.value) != int(step):
            self.slider.value = int(step)  # the observer calls _apply
        else:
            self._apply(int(step))

    def _apply(self, step: int) -> None:
        self._step = step
        self.info.value = f"<b>{step + 1}. {STAGES[step]}</b>"
        self._render()

    def figure(self) -> plt.Figure:
        """A static matplotlib figure of the current stage."""
        fig = plot_pipeline_stage(self.trace, self._step, width=self.width)
        fig.tight_layout()
        return fig

    def _on_change(self, change) -> None:
        self._apply(int(change["new"]))
