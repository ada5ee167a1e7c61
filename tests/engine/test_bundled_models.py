"""The models inside the package: found by name, stored in float16 and loaded exactly as the
float32 models they came from, each with its held-out evaluation in its metadata, all small
enough for the package's 40 MB."""
import json

import pytest
import torch

from riffd.engine.checkpoint import (CheckpointError, load_checkpoint, read_metadata,
                                     restore_dtype, store_weights)
from riffd.engine.loading import (BUNDLED_DIR, BUNDLED_MODEL, bundled_models, load_generator,
                                  load_model, resolve_model_path)
from riffd.engine.melody_representation import Note

SYMBOLIC = {"melody_erk": "melody_lstm", "notewise_n2_folk": "notewise_lstm",
            "multilabel_m5_chorales": "multilabel_lstm", "gan_cnn_chorales": "gan_cnn"}
FLOAT16 = ("notewise_n2_folk", "multilabel_m5_chorales", "gan_cnn_chorales")
PACKAGE_LIMIT_BYTES = 40 * 1024 * 1024


def test_every_symbolic_family_is_bundled_and_found_by_name():
    models = bundled_models()
    for name, family in SYMBOLIC.items():
        assert name in models, f"{name} is not in {BUNDLED_DIR}"
        assert resolve_model_path(name) == models[name]
        assert resolve_model_path(f"bundled:{name}") == models[name]
        assert read_metadata(models[name])["family"] == family
    assert resolve_model_path(None) == resolve_model_path("") == BUNDLED_MODEL
    assert resolve_model_path("runs/x/best.safetensors").as_posix() == "runs/x/best.safetensors"


def test_an_unknown_bundled_name_lists_the_bundled_models():
    with pytest.raises(CheckpointError, match="no bundled model called 'nonesuch'.*melody_erk"):
        resolve_model_path("nonesuch")


def test_the_bundled_models_fit_the_package_limit():
    total = sum(p.stat().st_size for p in BUNDLED_DIR.glob("*.safetensors"))
    # the code, configs and data of the package are well under 4 MB
    assert total < PACKAGE_LIMIT_BYTES - 4 * 1024 * 1024, f"{total / 2**20:.1f} MB of models"


@pytest.mark.parametrize("name", FLOAT16)
def test_bundled_polyphonic_models_are_float16_with_their_held_out_figures(name):
    path = bundled_models()[name]
    tensors, meta = load_checkpoint(path)
    assert meta["storage"] == {"dtype": "float16", "runs_in": "float32"}
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.float16}
    assert not any(k.startswith("_") for k in tensors), "training state left in a bundled model"
    report = meta["metrics"]["evaluation"]                   # riffd eval --store on this file
    why = json.dumps(report)[:400]
    if name == "notewise_n2_folk":           # the document's N1 s=512: 39.6 % and 83.1 %
        assert report["held_out"]["pitch_accuracy"] >= 0.396, why
        assert report["held_out"]["duration_accuracy"] >= 0.831, why
    elif name == "multilabel_m5_chorales":                   # the document's M5 folk: 79.2 %
        assert report["held_out"]["top3_accuracy"] >= 0.792, why
    else:                                   # EB, UPC and QN within 10 % of the held-out bars'
        bars = report["independent_bars"]
        for metric in ("empty_bars_pct", "used_pitch_classes", "qualified_notes_pct"):
            real, generated = bars[metric]["real"], bars[metric]["generated"]
            assert abs(generated - real) <= 0.1 * real, (metric, why)
    model, _ = load_model(path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", list(SYMBOLIC))
def test_every_bundled_model_answers_a_phrase(name):
    generator = load_generator(name, device="cpu")
    generator.prime([Note(62, 0.0, 1.0), Note(66, 1.0, 1.0), Note(69, 2.0, 2.0)])
    steps = [generator.next_step() for _ in range(64)]          # 4 bars of 16ths
    assert any(step.starts for step in steps)


def test_float16_storage_loads_the_float32_model_rounded_once(tmp_path):
    """A float16 copy of the bundled melody model (stored in float32) loads as float32
    weights that are exactly the originals rounded to float16, and plays the same logits
    within float16 rounding."""
    half = store_weights(BUNDLED_MODEL, tmp_path / "half.safetensors")
    assert half.stat().st_size < 0.6 * BUNDLED_MODEL.stat().st_size
    full_model, _ = load_model(BUNDLED_MODEL)
    half_model, meta = load_model(half)
    assert meta["storage"]["dtype"] == "float16"
    full, restored = full_model.state_dict(), half_model.state_dict()
    for name, weight in full.items():
        assert restored[name].dtype == weight.dtype == torch.float32
        assert torch.equal(restored[name], weight.half().float()), name
    tokens = torch.randint(0, full_model.cfg.vocab_size, (2, 48),
                           generator=torch.Generator().manual_seed(0))       # (B, T) ids
    with torch.no_grad():
        a, b = _logits(full_model(tokens)), _logits(half_model(tokens))        # (B, T, V)
    assert a.dtype == b.dtype == torch.float32
    difference = float((a - b).abs().max())
    assert 0 < difference <= 2e-2 * float(a.abs().max())    # float16 keeps 11 significant bits
    assert float((a.argmax(-1) != b.argmax(-1)).float().mean()) < 0.02


def _logits(output):
    return output[0] if isinstance(output, tuple) else output


def test_restore_dtype_refuses_a_dtype_riffd_does_not_run():
    with pytest.raises(CheckpointError, match="upgrade riffd"):
        restore_dtype({"w": torch.zeros(2, dtype=torch.float16)},
                      {"storage": {"dtype": "float16", "runs_in": "float8"}})
