"""Streaming equals batch for every notewise and multilabel architecture (N1–N4, M4–M7),
including attention past its window and the causal CNN front end."""
import pytest
import torch

from riffd.engine.attention import WindowedAttention
from riffd.engine.lstm_core import CausalConvFrontEnd
from riffd.engine.notewise_lstm import NotewiseLSTM, NotewiseLSTMConfig

WINDOW = 5
T = 23                                          # well past the attention window

NOTEWISE = {
    "N1": {},
    "N2": {"attention": True},
    "N3": {"cnn": True},
    "N4": {"cnn": True, "attention": True},
}


def _settle_batch_norm(model, *inputs):
    """Give batch-norm non-trivial running statistics, then switch to eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*inputs)
    return model.eval()


@pytest.mark.parametrize("name", list(NOTEWISE))
def test_notewise_step_equals_forward(name):
    torch.manual_seed(0)
    cfg = NotewiseLSTMConfig(vocab_size=30, num_durations=9, pitch_embed_dim=8,
                             duration_embed_dim=4, hidden_size=16, num_layers=3, dense_size=12,
                             attention_window=WINDOW, attention_dim=8, cnn_channels=10,
                             cnn_kernel=3, cnn_pool=2, **NOTEWISE[name])
    model = NotewiseLSTM(cfg)
    pitches = torch.randint(0, 30, (2, T))
    durations = torch.randint(0, 9, (2, T))
    _settle_batch_norm(model, pitches, durations)
    with torch.no_grad():
        p_full, d_full = model(pitches, durations)                  # (B, T, P), (B, T, D)
        state = model.init_state(2, "cpu")
        for t in range(T):
            (p, d), state = model.step(pitches[:, t], durations[:, t], state)
            torch.testing.assert_close(p, p_full[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(d, d_full[:, t], atol=1e-5, rtol=1e-4)
    if cfg.attention:
        assert state["attention"][0].shape[1] == WINDOW             # bounded ring buffer


def test_attention_sees_only_its_window():
    torch.manual_seed(1)
    attention = WindowedAttention(dim=6, attn_dim=4, window=WINDOW).eval()
    h = torch.randn(1, 12, 6)
    changed = h.clone()
    changed[0, 2] += 5.0                                            # step 2
    with torch.no_grad():
        a, b = attention(h), attention(changed)
    # steps 2 … 2+W-1 see step 2; later ones do not
    assert not torch.allclose(a[0, 2 + WINDOW - 1], b[0, 2 + WINDOW - 1])
    torch.testing.assert_close(a[0, 2 + WINDOW:], b[0, 2 + WINDOW:])
    torch.testing.assert_close(a[0, :2], b[0, :2])                  # causal


def test_attention_ring_buffer_matches_forward_many_windows_on():
    torch.manual_seed(2)
    attention = WindowedAttention(dim=6, attn_dim=4, window=3).eval()
    h = torch.randn(2, 20, 6)
    with torch.no_grad():
        full = attention(h)
        state = attention.init_state(2, "cpu")
        for t in range(20):
            out, state = attention.step(h[:, t], state)
            torch.testing.assert_close(out, full[:, t], atol=1e-6, rtol=1e-5)


def test_causal_cnn_front_end_streams_and_never_looks_ahead():
    torch.manual_seed(3)
    cnn = CausalConvFrontEnd(in_dim=4, channels=5, kernel=3, pool=3)
    x = torch.randn(2, 15, 4)
    _settle_batch_norm(cnn, x)
    later = x.clone()
    later[:, 9:] += 3.0
    with torch.no_grad():
        full, changed = cnn(x), cnn(later)
        torch.testing.assert_close(full[:, :9], changed[:, :9])     # the future is unseen
        state = cnn.init_state(2, "cpu")
        for t in range(15):
            y, state = cnn.step(x[:, t], state)
            torch.testing.assert_close(y, full[:, t], atol=1e-6, rtol=1e-5)
    assert full.shape == (2, 15, 5)                                 # one output per step


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="window"):
        WindowedAttention(4, 4, 0)


MULTILABEL = {
    "M4": {"hidden_size": 16, "dense_size": 12},
    "M5": {"hidden_size": 16, "dense_size": 12, "attention": True},
    "M6": {"hidden_size": 12, "dense_size": 8, "attention": True},
    "M7": {"hidden_size": 16, "dense_size": 8},
    "CNN": {"hidden_size": 16, "dense_size": 8, "cnn": True, "attention": True},
}


@pytest.mark.parametrize("name", list(MULTILABEL))
def test_multilabel_step_equals_forward(name):
    from riffd.engine.multilabel_lstm import MultilabelLSTM, MultilabelLSTMConfig
    torch.manual_seed(0)
    cfg = MultilabelLSTMConfig(num_pitches=24, attention_window=WINDOW, attention_dim=8,
                               cnn_channels=10, cnn_kernel=3, cnn_pool=2, **MULTILABEL[name])
    model = MultilabelLSTM(cfg)
    frames = (torch.rand(2, T, 24) < 0.2).float()
    _settle_batch_norm(model, frames)
    with torch.no_grad():
        full = model(frames)                                        # (B, T, P)
        state = model.init_state(2, "cpu")
        for t in range(T):
            logits, state = model.step(frames[:, t], state)
            torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-4)
