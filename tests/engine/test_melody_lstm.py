import torch

from riffd.engine.melody_lstm import MelodyLSTM, MelodyLSTMConfig
from riffd.engine.sampling import SamplingSettings, sample


def test_streaming_step_equals_forward():
    torch.manual_seed(0)
    model = MelodyLSTM(MelodyLSTMConfig(vocab_size=30, embed_dim=16, hidden_size=32,
                                        num_layers=2)).eval()
    tokens = torch.randint(0, 30, (3, 25))
    with torch.inference_mode():
        full = model(tokens)                                   # (B, T, V)
        state = model.init_state(3, "cpu")
        steps = []
        for t in range(tokens.shape[1]):
            logits, state = model.step(tokens[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_greedy_takes_the_most_likely_token():
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 1.0]])
    assert sample(logits, SamplingSettings(greedy=True)).tolist() == [1, 0]


def test_top_k_and_mask_restrict_the_choice():
    g = torch.Generator().manual_seed(1)
    logits = torch.tensor([[1.0, 1.1, 1.2, 5.0, 0.0]])
    chosen = {int(sample(logits, SamplingSettings(top_k=2, temperature=5.0), generator=g))
              for _ in range(200)}
    assert chosen == {2, 3}
    allowed = torch.tensor([True, True, False, False, False])
    chosen = {int(sample(logits, SamplingSettings(), allowed, generator=g)) for _ in range(200)}
    assert chosen <= {0, 1} and len(chosen) == 2


def test_top_p_keeps_the_smallest_set_reaching_p():
    g = torch.Generator().manual_seed(2)
    probs = torch.tensor([[0.6, 0.3, 0.05, 0.05]])
    chosen = {int(sample(probs.log(), SamplingSettings(top_p=0.85), generator=g))
              for _ in range(300)}
    assert chosen == {0, 1}


def test_low_temperature_sharpens():
    g = torch.Generator().manual_seed(3)
    logits = torch.tensor([[1.0, 1.5]])
    picks = [int(sample(logits, SamplingSettings(temperature=0.05), generator=g)) for _ in range(100)]
    assert picks.count(1) == 100
