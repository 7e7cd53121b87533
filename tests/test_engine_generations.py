"""Every GigaAM generation against upstream's own code: token-for-token parity, no torch.

The fixtures in ``tests/fixtures/generations/`` are small random-weight checkpoints in each
generation's real format (``torch.save`` of an OmegaConf config and a state dict), decoded by
upstream GigaAM at 8555893 (its newest code, which builds every generation; v1/v2 also
re-decoded at 42436bf, the commit that introduced them, with the same text) — see
``benchmarks/upstream_fixtures.py``, which wrote them:

* ``multilingual_ctc`` / ``multilingual_large_ctc``: v3 layout (conv1d, rotary, layer-norm
  conv module, 320-point frames), 70-character vocabulary in ``decoding.vocabulary``, fp32;
* ``v2_ctc`` / ``v2_rnnt``: conv2d subsampling, rotary, batch-norm conv module (kernel 31),
  400-point centred frames, vocabulary in top-level ``labels`` via ``${labels}``;
* ``v1_ctc`` (fp16 checkpoint) / ``v1_rnnt`` (SentencePiece): as v2 with relative positions.

fp32: exact tokens, frames and text, alone and batched; encoder output within 1e-4 (features
1e-3), the tolerances of the v3 golden set. int8: the encoder's closeness (see its test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gigaam_api.model import AsrModel, UnsupportedModelError, load_model
from gigaam_api.model.checkpoint import read_checkpoint, resolve_interpolations
from gigaam_api.model.spec import model_spec
from tests.helpers import checkpoint_writer

FIXTURES = Path(__file__).parent / "fixtures" / "generations"
GENERATIONS = (
    "multilingual_ctc",
    "multilingual_large_ctc",
    "v2_ctc",
    "v2_rnnt",
    "v1_ctc",
    "v1_rnnt",
)


def _expected(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "expected.json").read_text())
    return data


def _waves(expected: dict[str, Any]) -> list[np.ndarray]:
    pcm = np.load(FIXTURES / "waves.npy")
    out, offset = [], 0
    for _start, n in expected["waves"]:
        out.append(pcm[offset : offset + n].astype(np.float32) / 32768.0)
        offset += n
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AsrModel]:
    cache = tmp_path_factory.mktemp("graphs")
    return {
        name: load_model(FIXTURES / name / f"{name}.ckpt", num_threads=1, cache_dir=cache)
        for name in GENERATIONS
    }


def _same(result: Any, expected: dict[str, Any]) -> None:
    assert result.token_ids == expected["token_ids"]
    assert result.token_frames == expected["token_frames"]
    assert result.text == expected["text"]


@pytest.mark.parametrize("name", GENERATIONS)
def test_tokens_match_upstream_alone(models: dict[str, AsrModel], name: str) -> None:
    expected = _expected(name)
    for wave, exp in zip(_waves(expected), expected["single"], strict=True):
        (result,) = models[name].transcribe([wave])
        _same(result, exp)
        assert result.token_ids, "the fixture must exercise decoding"


@pytest.mark.parametrize("name", GENERATIONS)
def test_tokens_match_upstream_batched(models: dict[str, AsrModel], name: str) -> None:
    """A padded batch gives upstream's batched tokens (which equal the single-wave ones here:
    centred front ends pad each wave from its own samples, see ``features.py``)."""
    expected = _expected(name)
    results = models[name].transcribe(_waves(expected))
    for result, exp in zip(results, expected["batch"], strict=True):
        _same(result, exp)


@pytest.mark.parametrize("name", GENERATIONS)
def test_encoder_output_matches_upstream(models: dict[str, AsrModel], name: str) -> None:
    model = models[name]
    wave = _waves(_expected(name))[0]
    feats, lens = model.features([wave])
    encoded, enc_len = model.encode(feats, lens)
    reference = np.load(FIXTURES / name / "encoded.npy")
    assert int(enc_len[0]) == reference.shape[1] == _expected(name)["single"][0]["encoded_length"]
    np.testing.assert_allclose(encoded[0], reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["multilingual_ctc", "v2_ctc"])
def test_features_match_upstream(models: dict[str, AsrModel], name: str) -> None:
    """One model per front end: 320-point uncentred frames, 400-point centred reflect."""
    wave = _waves(_expected(name))[0]
    feats, lens = models[name].features([wave])
    reference = np.load(FIXTURES / name / "features.npy")
    assert lens.tolist() == [reference.shape[1]]
    np.testing.assert_allclose(feats[0], reference, atol=1e-3, rtol=0)


def test_specs_read_each_generation_from_its_config() -> None:
    specs = {n: model_spec(read_checkpoint(FIXTURES / n / f"{n}.ckpt").cfg) for n in GENERATIONS}
    ml, v2, v1 = specs["multilingual_ctc"], specs["v2_rnnt"], specs["v1_rnnt"]
    assert (ml.encoder.subsampling, ml.encoder.attention, ml.encoder.conv_norm) == (
        "conv1d",
        "rotary",
        "layer_norm",
    )
    assert ml.front_end.n_fft == 320 and not ml.front_end.center
    assert ml.vocabulary is not None and len(ml.vocabulary) == 70 and ml.blank_id == 70
    assert ml.vocabulary_field == "decoding.vocabulary"
    # v1/v2 configs omit these keys: upstream's defaults apply
    assert (v2.encoder.subsampling, v2.encoder.attention, v2.encoder.conv_norm) == (
        "conv2d",
        "rotary",
        "batch_norm",
    )
    assert v2.encoder.conv_kernel == 31 and v2.encoder.subs_kernel == 3
    assert v2.front_end.n_fft == v2.front_end.win_length == 400 and v2.front_end.center
    assert v2.vocabulary_field == "decoding.vocabulary" and v2.vocabulary is not None
    assert v2.vocabulary[0] == " " and len(v2.vocabulary) == 33
    assert v1.encoder.attention == "rel_pos" and v1.vocabulary is None


def test_fp16_and_fp32_checkpoints_are_read_alike() -> None:
    fp16 = read_checkpoint(FIXTURES / "v1_ctc" / "v1_ctc.ckpt")
    fp32 = read_checkpoint(FIXTURES / "v2_ctc" / "v2_ctc.ckpt")
    weight = "encoder.layers.0.feed_forward1.linear1.weight"
    assert fp16.state_dict[weight].dtype == np.float16
    assert fp32.state_dict[weight].dtype == np.float32


@pytest.mark.parametrize("name", GENERATIONS)
def test_int8_stays_close(name: str) -> None:
    """int8 builds and runs for every generation and its encoder stays close to upstream's fp32.

    Bound: mean error under 20 % of the output's mean magnitude. Measured on these fixtures:
    0.10-0.17; the v3 golden ``v3_ctc`` gives 0.106 on the same audio (the v3 tests' 12 %
    bound is met on their own wave). Token agreement is not asserted here: the fixtures' heads
    are scaled onto the encoder's small frame-to-frame spread (``upstream_fixtures.py``) so
    that fp32 decoding is varied, which makes their decisions hypersensitive to any int8
    error. (Full-size random weights do not help: their CTC argmax is nearly constant. int8
    accuracy needs real weights, which this suite has none of.)
    """
    expected = _expected(name)
    wave = _waves(expected)[0]
    int8 = load_model(FIXTURES / name / f"{name}.ckpt", num_threads=1, quantize_int8=True)
    assert int8.quantized
    feats, lens = int8.features([wave])
    encoded, enc_len = int8.encode(feats, lens)
    reference = np.load(FIXTURES / name / "encoded.npy")
    assert enc_len.tolist() == [reference.shape[1]]
    assert np.abs(encoded[0] - reference).mean() < 0.2 * np.abs(reference).mean()
    results = int8.transcribe(_waves(expected))
    assert all(0 <= t < int8.blank_id for r in results for t in r.token_ids)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("encoder", "subsampling", "dw_striding", r"encoder\.subsampling = 'dw_striding'"),
        ("encoder", "self_attention_model", "abs_pos", r"encoder\.self_attention_model"),
        ("encoder", "conv_norm_type", "group_norm", r"encoder\.conv_norm_type"),
        ("encoder", "subsampling_factor", 8, None),
        ("encoder", "subsampling_factor", 6, r"encoder\.subsampling_factor = 6"),
        ("encoder", "conv_kernel_size", 30, r"encoder\.conv_kernel_size = 30"),
        ("preprocessor", "win_length", 320, r"preprocessor\.win_length = 320"),
        ("preprocessor", "sample_rate", 8000, r"preprocessor\.sample_rate = 8000"),
    ],
)
def test_unbuildable_options_name_their_field(
    tmp_path: Path, section: str, key: str, value: Any, message: str | None
) -> None:
    ckpt = read_checkpoint(FIXTURES / "v2_ctc" / "v2_ctc.ckpt")
    cfg = dict(ckpt.cfg)
    cfg[section] = dict(cfg[section], **{key: value})
    path = tmp_path / "changed.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, dict(ckpt.state_dict))
    if message is None:  # a buildable option the weights do not fit: the weight is named
        with pytest.raises(UnsupportedModelError, match=r"state_dict lacks|weight"):
            load_model(path, cache_dir=tmp_path)
        return
    with pytest.raises(UnsupportedModelError, match=message):
        load_model(path)


def test_vocabulary_must_fit_the_head(tmp_path: Path) -> None:
    ckpt = read_checkpoint(FIXTURES / "v2_ctc" / "v2_ctc.ckpt")
    cfg = dict(ckpt.cfg, labels=ckpt.cfg["labels"][:-1])
    cfg["decoding"] = dict(cfg["decoding"], vocabulary=None)
    path = tmp_path / "short.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, dict(ckpt.state_dict))
    with pytest.raises(UnsupportedModelError, match=r"labels has 32 symbols.*34 classes"):
        load_model(path)


def test_config_references_resolve_like_omegaconf() -> None:
    cfg = {
        "labels": [" ", "а"],
        "decoding": {"vocabulary": "${labels}", "other": "${decoding.vocabulary}"},
        "missing": "${nowhere.at_all}",
        "cycle": "${cycle}",
        "embedded": "prefix ${labels}",
    }
    resolved = resolve_interpolations(cfg)
    assert resolved["decoding"] == {"vocabulary": [" ", "а"], "other": [" ", "а"]}
    # what OmegaConf would refuse stays the string, so the spec names the field
    assert resolved["missing"] == "${nowhere.at_all}"
    assert resolved["cycle"] == "${cycle}"
    assert resolved["embedded"] == "prefix ${labels}"


def test_a_tokenizer_file_wins_over_listed_labels(tmp_path: Path) -> None:
    """Upstream's rule: ``decoding.model_path`` (or a model published with a tokenizer)
    means SentencePiece, even when the config also lists labels."""
    folder = FIXTURES / "v1_rnnt"
    ckpt = read_checkpoint(folder / "v1_rnnt.ckpt")
    cfg = dict(ckpt.cfg, labels=[f"p{i}" for i in range(64)])
    path = tmp_path / "v1_rnnt.ckpt"
    checkpoint_writer().write_checkpoint(path, cfg, dict(ckpt.state_dict))
    (tmp_path / "v1_rnnt_tokenizer.model").write_bytes(
        (folder / "v1_rnnt_tokenizer.model").read_bytes()
    )
    model = load_model(path, num_threads=1)
    expected = _expected("v1_rnnt")
    (result,) = model.transcribe(_waves(expected)[:1])
    _same(result, expected["single"][0])
