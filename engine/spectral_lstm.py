"""The spectral LSTM family: the audio document's six architectures over spectral frames.

Every architecture maps a sequence of normalised spectral vectors (see
``riffd.engine.spectral_representation``) to a prediction of the next vector at every position:

* ``base``      LSTM → linear (the GRUV baseline)
* ``fc``        linear + ReLU (size = LSTM size) → LSTM → linear
* ``conv1d``    Conv1D over the vector (12 filters of 3) + ReLU, max-pool 2 → LSTM → linear
* ``conv2d``    the last K frames stacked as a K × bins image with real and imaginary channels
                → Conv2D (filters of K × 3) + ReLU, max-pool 2 along frequency → LSTM → linear
* ``bilinear``  linear + ReLU → two LSTMs side by side, outputs summed → linear
* ``stacked``   ``num_layers`` LSTMs on top of each other → linear

Regularisation as the document: dropout ``fc_dropout`` (0.2) after fully connected layers with
an L2 penalty ``l2`` (1e-4) on their weights (:meth:`SpectralLSTM.l2_penalty`, added to the loss
by the trainer), and dropout ``lstm_dropout`` (0.5) on the LSTM inputs and outputs (torch's fused
LSTM has no recurrent dropout, so the hidden-to-hidden weights are left undropped).

Two output heads (``head``): ``mse``, the documents' point prediction of the next vector (D
values), or ``laplace``, a Laplace distribution per value: a location and a log scale (2D
values), trained by its negative log-likelihood (:func:`laplace_nll`) and sampled at generation
(:func:`sample_laplace`), so that free-running output keeps the spread of the music instead of
settling on the average frame.

``forward`` trains on whole sequences; ``init_state`` / ``step`` advance one frame at a time at
a cost that does not depend on the history (``conv2d`` keeps its last K - 1 input frames in the
state, a ring of fixed size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FAMILY = "spectral_lstm"
ARCHITECTURES = ("base", "fc", "conv1d", "conv2d", "bilinear", "stacked")
HEADS = ("mse", "laplace")
LOG_SCALE_RANGE = (-6.0, 3.0)     # clamp of the Laplace head's log scale (normalised units)

State = dict[str, torch.Tensor]    # "h0", "c0", ("h1", "c1"), ("context"): see init_state


@dataclass
class SpectralLSTMConfig:
    """Everything the model needs; ``input_dim`` (D, the vector length) is set by the data."""

    input_dim: int
    architecture: str = "fc"
    hidden_size: int = 256            # LSTM units (the document: 2048 for D = 8000)
    num_layers: int = 2               # LSTMs in ``stacked``; 1 elsewhere
    fc_size: int = 0                  # width of the input FC layer; 0 = hidden_size (document)
    conv_filters: int = 12            # conv1d / conv2d output channels
    conv_kernel: int = 3              # along frequency (values)
    pool: int = 2                     # max-pool along frequency
    context_frames: int = 3           # K frames stacked for conv2d (3 × 0.25 s = 0.75 s)
    lstm_dropout: float = 0.5
    fc_dropout: float = 0.2
    l2: float = 1e-4                  # L2 weight on the FC and conv weights
    head: str = "mse"                 # "mse" (D values) or "laplace" (location + log scale, 2D)

    @property
    def output_dim(self) -> int:
        return 2 * self.input_dim if self.head == "laplace" else self.input_dim

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, "
                             f"got {self.architecture!r}")
        if self.architecture == "conv2d" and self.input_dim % 2:
            raise ValueError("conv2d needs an even input_dim (real and imaginary halves)")


class SpectralLSTM(nn.Module):
    def __init__(self, cfg: SpectralLSTMConfig):
        super().__init__()
        self.cfg = cfg
        arch, d, h = cfg.architecture, cfg.input_dim, cfg.hidden_size
        self.fc_layers: list[nn.Module] = []           # weights that get the L2 penalty
        self.in_drop = nn.Dropout(cfg.lstm_dropout)
        self.out_drop = nn.Dropout(cfg.lstm_dropout)
        if arch in ("fc", "bilinear"):
            f = cfg.fc_size or h
            self.fc_in = nn.Linear(d, f)
            self.fc_drop = nn.Dropout(cfg.fc_dropout)
            self.fc_layers.append(self.fc_in)
            lstm_in = f
        elif arch == "conv1d":
            self.conv = nn.Conv1d(1, cfg.conv_filters, cfg.conv_kernel, padding=cfg.conv_kernel // 2)
            self.pool = nn.MaxPool1d(cfg.pool)
            self.fc_layers.append(self.conv)
            lstm_in = cfg.conv_filters * (d // cfg.pool)
        elif arch == "conv2d":
            self.conv = nn.Conv2d(2, cfg.conv_filters, (cfg.context_frames, cfg.conv_kernel),
                                  padding=(0, cfg.conv_kernel // 2))
            self.pool = nn.MaxPool2d((1, cfg.pool))
            self.fc_layers.append(self.conv)
            lstm_in = cfg.conv_filters * ((d // 2) // cfg.pool)
        else:
            lstm_in = d
        layers = cfg.num_layers if arch == "stacked" else 1
        self.lstms = nn.ModuleList([nn.LSTM(lstm_in if i == 0 else h, h, batch_first=True)
                                    for i in range(layers)])
        if arch == "bilinear":
            self.lstms.append(nn.LSTM(lstm_in, h, batch_first=True))
        self.head = nn.Linear(h, cfg.output_dim)
        self.fc_layers.append(self.head)

    # --- the input transform: (B, T, D) frames → (B, T, lstm_in) ------------------------------
    def _features(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-frame features. context: (B, K - 1, D) frames before x (conv2d only)."""
        cfg, (b, t, d) = self.cfg, x.shape
        arch = cfg.architecture
        if arch in ("fc", "bilinear"):
            return self.fc_drop(torch.relu(self.fc_in(x))), None      # (B, T, F)
        if arch == "conv1d":
            y = self.pool(torch.relu(self.conv(x.reshape(b * t, 1, d))))   # (B·T, C, D/pool)
            return y.reshape(b, t, -1), None
        if arch == "conv2d":
            k = cfg.context_frames
            full = torch.cat([context, x], dim=1)                      # (B, K - 1 + T, D)
            stacks = full.unfold(1, k, 1)                              # (B, T, D, K)
            img = stacks.permute(0, 1, 3, 2).reshape(b * t, k, 2, d // 2).transpose(1, 2)
            y = self.pool(torch.relu(self.conv(img)))                  # (B·T, C, 1, bins/pool)
            return y.reshape(b, t, -1), full[:, full.shape[1] - (k - 1):]
        return x, None

    def _run(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x: (B, T, D) → predictions (B, T, O) and the state after the last frame
        (O = D for the mse head, 2D for laplace: locations then log scales)."""
        new: State = {}
        feats, context = self._features(x, state.get("context"))
        if context is not None:
            new["context"] = context
        y = self.in_drop(feats)                                        # (B, T, L)
        arch = self.cfg.architecture
        if arch == "bilinear":
            outs = []
            for i, lstm in enumerate(self.lstms):
                o, (h, c) = lstm(y, (state[f"h{i}"], state[f"c{i}"]))
                outs.append(o)
                new[f"h{i}"], new[f"c{i}"] = h, c
            y = outs[0] + outs[1]                                      # (B, T, H) summed
        else:
            for i, lstm in enumerate(self.lstms):
                y, (h, c) = lstm(y, (state[f"h{i}"], state[f"c{i}"]))
                new[f"h{i}"], new[f"c{i}"] = h, c
                if i + 1 < len(self.lstms):
                    y = self.in_drop(y)
        return self.head(self.out_drop(y)), new                        # (B, T, D)

    def forward(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """Next-frame predictions at every position. x: (B, T, D) → (B, T, O)."""
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        return self._run(x, state)[0]

    def forward_with_state(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Like forward, from ``state``, also returning the state after the last frame
        (priming a stream with a whole seed in one call)."""
        return self._run(x, state)

    def init_state(self, batch: int, device: torch.device | str) -> State:
        """Zero state for ``batch`` streams: (1, B, H) h/c per LSTM, and for conv2d the
        (B, K - 1, D) context of frames before the first (zeros)."""
        h = self.cfg.hidden_size
        state: State = {}
        for i in range(len(self.lstms)):
            state[f"h{i}"] = torch.zeros(1, batch, h, device=device)
            state[f"c{i}"] = torch.zeros(1, batch, h, device=device)
        if self.cfg.architecture == "conv2d":
            state["context"] = torch.zeros(batch, self.cfg.context_frames - 1,
                                           self.cfg.input_dim, device=device)
        return state

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance one frame. x: (B, D) → prediction of the next frame (B, O), new state."""
        y, state = self._run(x.unsqueeze(1), state)
        return y[:, 0], state

    def point(self, prediction: torch.Tensor) -> torch.Tensor:
        """The predicted next vector (..., D): the output itself, or the Laplace location."""
        return prediction[..., :self.cfg.input_dim]

    def prediction_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss per value: MSE, or the Laplace negative log-likelihood."""
        if self.cfg.head == "laplace":
            return laplace_nll(prediction, target)
        return nn.functional.mse_loss(prediction, target)

    def sample(self, prediction: torch.Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A next vector (..., D) drawn from the prediction (the point for the mse head or at
        temperature 0; ``temperature`` scales the Laplace scale)."""
        if self.cfg.head != "laplace" or temperature <= 0:
            return self.point(prediction)
        return sample_laplace(prediction, temperature, generator)

    def l2_penalty(self) -> torch.Tensor:
        """``l2`` × the sum of squared FC / conv weights (add it to the training loss)."""
        total = sum((m.weight ** 2).sum() for m in self.fc_layers)
        return self.cfg.l2 * total


def laplace_parts(prediction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 2D) → location (..., D) and clamped log scale (..., D)."""
    loc, log_scale = prediction.chunk(2, dim=-1)
    return loc, log_scale.clamp(*LOG_SCALE_RANGE)


def laplace_nll(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per value (nats, without the constant ln 2) of ``target``
    (..., D) under Laplace(location, exp(log scale)) from ``prediction`` (..., 2D)."""
    loc, log_scale = laplace_parts(prediction)
    return ((target - loc).abs() * torch.exp(-log_scale) + log_scale).mean()


def sample_laplace(prediction: torch.Tensor, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw (..., D) from Laplace(location, temperature × scale); prediction: (..., 2D)."""
    loc, log_scale = laplace_parts(prediction)
    return loc + temperature * torch.exp(log_scale) * laplace_noise(loc, generator)


def laplace_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Laplace(0, 1) draws of ``like``'s shape, device and dtype (inverse CDF of a uniform)."""
    u = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs().clamp(max=0.4999999))
