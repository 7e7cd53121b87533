"""Greedy CTC / RNN-T decoding, tokenizers and word timestamps against the reference results.

CTC is decoded from the stored reference log-probs. RNN-T runs the real search loop with a
numpy predictor + joint built from each fixture checkpoint's own weights (Embedding → LSTM with
PyTorch's i, f, g, o gate order → joint), checked call by call against the reference trace.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from gigaam_api.catalogue import tokenizer_beside
from gigaam_api.model.checkpoint import read_checkpoint
from gigaam_api.model.decoding import Result, ctc_greedy, make_result, rnnt_greedy
from gigaam_api.model.tokenizer import (
    CharTokenizer,
    DecodingError,
    SentencePieceTokenizer,
    Tokenizer,
    TokenizerError,
    group_words,
    load_tokenizer,
)
from gigaam_api.transcript import Word

CTC_MODELS = ("v3_ctc", "v3_e2e_ctc")
RNNT_MODELS = ("v3_rnnt", "v3_e2e_rnnt")
TIME_ATOL = 1e-6
VOCAB = [" ", *"абвгдежзийклмнопрстуфхцчшщъыьэюя"]


def _load(golden_dir: Path, name: str) -> tuple[dict[str, Any], Tokenizer]:
    path = golden_dir / name / f"{name}.ckpt"
    ckpt = read_checkpoint(path)
    tokenizer = load_tokenizer(ckpt.cfg["decoding"], tokenizer_beside(path))
    return ckpt.state_dict, tokenizer


def _json(golden_dir: Path, name: str, file: str) -> Any:
    return json.loads((golden_dir / name / file).read_text(encoding="utf-8"))


def _assert_matches(result: Result, expected: dict[str, Any]) -> None:
    assert result.token_ids == expected["token_ids"]
    assert result.token_frames == expected["token_frames"]
    assert result.text == expected["text"]
    assert [w.text for w in result.words] == [w["text"] for w in expected["words"]]
    for word, ref in zip(result.words, expected["words"], strict=True):
        assert word.start == pytest.approx(ref["start"], abs=TIME_ATOL)
        assert word.end == pytest.approx(ref["end"], abs=TIME_ATOL)


# --------------------------------------------------------------------------- CTC


@pytest.mark.parametrize("name", CTC_MODELS)
def test_ctc_single_matches_reference(golden_dir: Path, name: str) -> None:
    _, tokenizer = _load(golden_dir, name)
    fixture = golden_dir / name
    log_probs = np.load(fixture / "log_probs.npy")
    lengths = np.load(fixture / "encoded_lengths.npy")
    n_samples = np.load(fixture / "waveform.npy").shape[0]
    expected = _json(golden_dir, name, "result.json")
    assert tokenizer.blank_id == expected["blank_id"]

    [(ids, frames)] = ctc_greedy(log_probs, lengths, tokenizer.blank_id)
    result = make_result(ids, frames, tokenizer, n_samples, int(lengths[0]))
    _assert_matches(result, expected)
    assert result.frame_shift == pytest.approx(expected["frame_shift_s"], abs=1e-12)
    assert tokenizer.pieces(result.token_ids) == expected["token_pieces"]
    # the reference's public transcribe(word_timestamps=True) gives the same words
    _assert_matches(result, {**expected, "words": expected["transcribe_words"]})
    # an argmax computed elsewhere (e.g. inside the graph) decodes identically
    argmax_hyps = ctc_greedy(np.load(fixture / "argmax.npy"), lengths, tokenizer.blank_id)
    assert argmax_hyps == [(ids, frames)]


@pytest.mark.parametrize("name", CTC_MODELS)
def test_ctc_batch_matches_reference(golden_dir: Path, name: str) -> None:
    _, tokenizer = _load(golden_dir, name)
    fixture = golden_dir / name
    lengths = np.load(fixture / "batch_encoded_lengths.npy")
    n_samples = np.load(fixture / "batch_lengths.npy")
    hyps = ctc_greedy(np.load(fixture / "batch_log_probs.npy"), lengths, tokenizer.blank_id)
    expected = _json(golden_dir, name, "batch_result.json")["items"]
    assert len(hyps) == len(expected) == 2
    for (ids, frames), n, length, item in zip(hyps, n_samples, lengths, expected, strict=True):
        _assert_matches(make_result(ids, frames, tokenizer, int(n), int(length)), item)


def test_ctc_rules_on_a_handmade_sequence() -> None:
    blank = 3
    labels = np.array([[1, 1, 3, 1, 2, 2, 3, 3, 0, 0]])
    # repeats collapse, a blank separates a repeat, frames at or past the length are ignored
    assert ctc_greedy(labels, [10], blank) == [([1, 1, 2, 0], [0, 3, 4, 8])]
    assert ctc_greedy(labels, [8], blank) == [([1, 1, 2], [0, 3, 4])]
    assert ctc_greedy(labels, [0], blank) == [([], [])]
    # the same through scores: one-hot log-probs
    scores = np.log(np.eye(4)[labels] * 0.97 + 0.01)
    assert ctc_greedy(scores, np.array([10]), blank) == [([1, 1, 2, 0], [0, 3, 4, 8])]


def test_ctc_edge_cases() -> None:
    blank = 2
    all_blank = np.full((2, 5, 3), -5.0)
    all_blank[:, :, blank] = 0.0
    assert ctc_greedy(all_blank, [5, 3], blank) == [([], []), ([], [])]
    assert ctc_greedy(np.zeros((1, 0, 3)), [0], blank) == [([], [])]
    assert ctc_greedy(np.zeros((0, 7, 3)), np.zeros(0, np.int64), blank) == []


@pytest.mark.parametrize(
    ("scores", "lengths", "blank", "message"),
    [
        (np.zeros((1, 4, 3)), [5], 2, "within"),
        (np.zeros((1, 4, 3)), [-1], 2, "within"),
        (np.zeros((1, 4, 3)), [2, 2], 2, "integers"),
        (np.zeros((1, 4, 3)), [2.0], 2, "integers"),
        (np.zeros((1, 4, 3)), [2], 3, "blank"),
        (np.zeros((1, 4)), [2], 3, "integer argmax"),
        (np.zeros(4), [2], 3, "expected"),
    ],
)
def test_ctc_bad_input_raises(scores: Any, lengths: Any, blank: int, message: str) -> None:
    with pytest.raises(DecodingError, match=message):
        ctc_greedy(scores, lengths, blank)


# --------------------------------------------------------------------------- RNN-T


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


@dataclass
class NumpyRnntStep:
    """The reference predictor + joint in numpy, from a checkpoint's head weights.

    Records every call so the search can be compared with the reference trace.
    """

    state_dict: dict[str, NDArray[Any]]
    calls: list[dict[str, NDArray[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sd = self.state_dict
        self.embed = sd["head.decoder.embed.weight"]
        self.w_ih = sd["head.decoder.lstm.weight_ih_l0"]
        self.w_hh = sd["head.decoder.lstm.weight_hh_l0"]
        self.b_lstm = sd["head.decoder.lstm.bias_ih_l0"] + sd["head.decoder.lstm.bias_hh_l0"]
        self.hidden_size = int(self.w_hh.shape[1])

    def project(self, encoded: NDArray[np.float32]) -> NDArray[np.float32]:
        """Encoder output [B, D, T] → joint encoder projection [B, T, J]."""
        sd = self.state_dict
        w, b = sd["head.joint.enc.weight"], sd["head.joint.enc.bias"]
        return np.ascontiguousarray(encoded.transpose(0, 2, 1) @ w.T + b, dtype=np.float32)

    def __call__(
        self,
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        sd = self.state_dict
        gates = self.embed[labels] @ self.w_ih.T + h[0] @ self.w_hh.T + self.b_lstm
        i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch's LSTM gate order
        c_new = _sigmoid(f) * c[0] + _sigmoid(i) * np.tanh(g)
        h_new = _sigmoid(o) * np.tanh(c_new)
        pred = h_new @ sd["head.joint.pred.weight"].T + sd["head.joint.pred.bias"]
        hidden = np.maximum(enc + pred, 0.0)
        logits = hidden @ sd["head.joint.joint_net.1.weight"].T + sd["head.joint.joint_net.1.bias"]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.calls.append(
            {"labels": labels.copy(), "enc": enc.copy(), "log_probs": log_probs, "g": h_new}
        )
        self.calls[-1].update(h=h_new, c=c_new)
        return (
            log_probs.astype(np.float32),
            h_new[None].astype(np.float32),
            c_new[None].astype(np.float32),
        )


@pytest.mark.parametrize("name", RNNT_MODELS)
def test_rnnt_trace_matches_reference_step_by_step(golden_dir: Path, name: str) -> None:
    state_dict, tokenizer = _load(golden_dir, name)
    fixture = golden_dir / name
    blank = tokenizer.blank_id
    # Starting from the blank label is the reference's zero start only because its row is zero.
    assert not state_dict["head.decoder.embed.weight"][blank].any()
    step = NumpyRnntStep(state_dict)
    enc_proj = step.project(np.load(fixture / "encoded.npy"))
    rnnt_greedy(enc_proj, np.load(fixture / "encoded_lengths.npy"), step, blank)

    trace = np.load(fixture / "rnnt_steps.npy")  # (t, u, input_label, argmax) per evaluation
    assert len(step.calls) == len(trace)
    ref_log_probs = np.load(fixture / "rnnt_joint_logprobs.npy")
    ref_g = np.load(fixture / "rnnt_decoder_out.npy")
    ref_h = np.load(fixture / "rnnt_state_h.npy")
    ref_c = np.load(fixture / "rnnt_state_c.npy")
    for s, (call, (t, _u, input_label, argmax)) in enumerate(zip(step.calls, trace, strict=True)):
        assert call["labels"].tolist() == [blank if input_label == -1 else input_label]
        np.testing.assert_array_equal(call["enc"][0], enc_proj[0, t])
        assert int(call["log_probs"][0].argmax()) == argmax
        np.testing.assert_allclose(call["log_probs"][0], ref_log_probs[s], atol=2e-4, rtol=0)
        np.testing.assert_allclose(call["g"][0], ref_g[s], atol=1e-5, rtol=0)
        np.testing.assert_allclose(call["h"][0], ref_h[s, 0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(call["c"][0], ref_c[s, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", RNNT_MODELS)
def test_rnnt_single_matches_reference(golden_dir: Path, name: str) -> None:
    state_dict, tokenizer = _load(golden_dir, name)
    fixture = golden_dir / name
    step = NumpyRnntStep(state_dict)
    lengths = np.load(fixture / "encoded_lengths.npy")
    [(ids, frames)] = rnnt_greedy(
        step.project(np.load(fixture / "encoded.npy")), lengths, step, tokenizer.blank_id
    )
    n_samples = np.load(fixture / "waveform.npy").shape[0]
    result = make_result(ids, frames, tokenizer, n_samples, int(lengths[0]))
    expected = _json(golden_dir, name, "result.json")
    _assert_matches(result, expected)
    _assert_matches(result, {**expected, "words": expected["transcribe_words"]})
    assert tokenizer.pieces(result.token_ids) == expected["token_pieces"]


@pytest.mark.parametrize("name", RNNT_MODELS)
def test_rnnt_batch_matches_reference(golden_dir: Path, name: str) -> None:
    state_dict, tokenizer = _load(golden_dir, name)
    fixture = golden_dir / name
    step = NumpyRnntStep(state_dict)
    lengths = np.load(fixture / "batch_encoded_lengths.npy")
    hyps = rnnt_greedy(
        step.project(np.load(fixture / "batch_encoded.npy")), lengths, step, tokenizer.blank_id
    )
    expected = _json(golden_dir, name, "batch_result.json")["items"]
    n_samples = np.load(fixture / "batch_lengths.npy")
    for (ids, frames), n, length, item in zip(hyps, n_samples, lengths, expected, strict=True):
        _assert_matches(make_result(ids, frames, tokenizer, int(n), int(length)), item)
    # only rows still decoding are evaluated: no call ever includes a finished row
    assert max(len(call["labels"]) for call in step.calls) == 2
    assert min(len(call["labels"]) for call in step.calls) == 1


def test_rnnt_symbol_cap(golden_dir: Path) -> None:
    state_dict, tokenizer = _load(golden_dir, "v3_rnnt")
    fixture = golden_dir / "v3_rnnt"
    step = NumpyRnntStep(state_dict)
    enc_proj = step.project(np.load(fixture / "encoded.npy"))
    lengths = np.load(fixture / "encoded_lengths.npy")
    [(_, frames)] = rnnt_greedy(enc_proj, lengths, step, tokenizer.blank_id)
    assert max(collections.Counter(frames).values()) == 10  # the fixture hits the cap
    [(ids3, frames3)] = rnnt_greedy(enc_proj, lengths, step, tokenizer.blank_id, max_symbols=3)
    assert max(collections.Counter(frames3).values()) == 3
    # upstream's ONNX decoder (cap 3) really decodes differently on this fixture
    assert tokenizer.decode(ids3) != _json(golden_dir, "v3_rnnt", "result.json")["text"]


def test_rnnt_batch_equals_rows_decoded_alone(golden_dir: Path) -> None:
    state_dict, tokenizer = _load(golden_dir, "v3_rnnt")
    step = NumpyRnntStep(state_dict)
    rng = np.random.default_rng(7)
    encoded = rng.normal(0.0, 1.0, (4, 64, 60)).astype(np.float32)
    enc_proj = step.project(encoded)
    lengths = np.array([60, 0, 23, 41])
    batched = rnnt_greedy(enc_proj, lengths, step, tokenizer.blank_id)
    alone = [
        rnnt_greedy(enc_proj[i : i + 1], lengths[i : i + 1], step, tokenizer.blank_id)[0]
        for i in range(4)
    ]
    assert batched == alone
    assert batched[1] == ([], [])
    assert sum(len(ids) for ids, _ in batched) > 0


def test_rnnt_edge_cases(golden_dir: Path) -> None:
    state_dict, _ = _load(golden_dir, "v3_rnnt")
    step = NumpyRnntStep(state_dict)
    enc = np.zeros((2, 5, 32), np.float32)
    assert rnnt_greedy(enc, [0, 0], step, 33) == [([], []), ([], [])]
    assert rnnt_greedy(np.zeros((0, 5, 32), np.float32), [], step, 33) == []
    assert step.calls == []  # nothing to decode, no evaluation


def test_rnnt_all_blank_evaluates_each_frame_once() -> None:
    calls = []

    def always_blank(
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        calls.append(len(labels))
        scores = np.zeros((len(labels), 4), np.float32)
        scores[:, 3] = 1.0
        return scores, h + 1.0, c + 1.0

    hyps = rnnt_greedy(np.zeros((2, 6, 8), np.float32), [6, 2], always_blank, 3, hidden_size=5)
    assert hyps == [([], []), ([], [])]
    assert calls == [2, 2, 1, 1, 1, 1]


def test_rnnt_state_is_adopted_only_on_emission() -> None:
    """A scripted step: emits token 1 while h[0] < 2 (h counts adopted states), else blank."""
    seen: list[float] = []

    def scripted(
        labels: NDArray[np.int64],
        h: NDArray[np.float32],
        c: NDArray[np.float32],
        enc: NDArray[np.float32],
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        seen.append(float(h[0, 0, 0]))
        scores = np.zeros((len(labels), 3), np.float32)
        scores[:, 1 if h[0, 0, 0] < 2 else 2] = 1.0
        return scores, h + 1.0, c

    hyps = rnnt_greedy(np.zeros((1, 3, 4), np.float32), [3], scripted, 2, hidden_size=1)
    assert hyps == [([1, 1], [0, 0])]
    # two emissions adopt states 1 and 2; the blanks' states (3, 3, 3) are discarded
    assert seen == [0.0, 1.0, 2.0, 2.0, 2.0]


def test_rnnt_bad_input_raises(golden_dir: Path) -> None:
    state_dict, _ = _load(golden_dir, "v3_rnnt")
    step = NumpyRnntStep(state_dict)
    enc = np.zeros((1, 5, 32), np.float32)
    with pytest.raises(DecodingError, match="B, T, J"):
        rnnt_greedy(enc[0], [5], step, 33)
    with pytest.raises(DecodingError, match="within"):
        rnnt_greedy(enc, [6], step, 33)
    with pytest.raises(DecodingError, match="max_symbols"):
        rnnt_greedy(enc, [5], step, 33, max_symbols=0)
    with pytest.raises(DecodingError, match="hidden_size"):
        rnnt_greedy(enc, [5], lambda *args: args, 33)

    def three_rows(*args: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        return np.zeros((3, 34), np.float32), args[1], args[2]

    def one_row(*args: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
        return np.zeros((1, 34), np.float32), args[1], args[2]

    with pytest.raises(DecodingError, match="shape"):
        rnnt_greedy(enc, [5], three_rows, 33, hidden_size=32)
    with pytest.raises(DecodingError, match="blank id 34"):
        rnnt_greedy(enc, [5], one_row, 34, hidden_size=32)


# --------------------------------------------------------------------------- tokenizers


def test_char_tokenizer() -> None:
    tokenizer = CharTokenizer(VOCAB)
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.blank_id == 33
    ids = [0, 18, 15, 0, 0, 12, 18, 0]  # " со  лс "
    assert tokenizer.decode(ids) == " со  лс "
    words = tokenizer.words(ids, [0, 1, 2, 3, 4, 5, 7, 9], 0.5)
    # spaces split and are dropped; runs of spaces give no empty words
    assert words == [Word("со", 0.5, 1.5), Word("лс", 2.5, 4.0)]
    assert tokenizer.decode([]) == "" and tokenizer.words([], [], 0.04) == []
    with pytest.raises(DecodingError, match="outside"):
        tokenizer.decode([33])
    with pytest.raises(TokenizerError):
        CharTokenizer([])
    with pytest.raises(TokenizerError):
        CharTokenizer("абв")


def test_sentencepiece_tokenizer(golden_dir: Path) -> None:
    tokenizer = SentencePieceTokenizer(golden_dir / "v3_e2e_rnnt" / "v3_e2e_rnnt_tokenizer.model")
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.blank_id == 1024
    assert tokenizer.pieces([0, 1, 2]) == ["<unk>", "<s>", "</s>"]
    ids = [3, 4, 2, 3]  # "▁п", "ет", "</s>", "▁п"
    pieces = tokenizer.pieces(ids)
    assert pieces[0].startswith("▁") and pieces[2] == "</s>"
    assert tokenizer.decode(ids) == "пет п"  # control pieces dropped, ▁ becomes a space
    # word grouping sees the raw pieces, like the reference (</s> stays inside the word)
    assert [w.text for w in tokenizer.words(ids, [0, 1, 2, 3], 0.04)] == ["пет</s>", "п"]
    with pytest.raises(DecodingError, match="outside"):
        tokenizer.decode([1024])
    assert (
        SentencePieceTokenizer(golden_dir / "v3_e2e_ctc" / "v3_e2e_ctc_tokenizer.model").blank_id
        == 256
    )


def test_tokenizer_files_and_config_errors(golden_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not found"):
        SentencePieceTokenizer(tmp_path / "missing.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"definitely not a sentencepiece model")
    with pytest.raises(TokenizerError, match="cannot read"):
        SentencePieceTokenizer(garbage)
    e2e_cfg = {"vocabulary": None, "model_path": "/somewhere/else/v3_e2e_ctc_tokenizer.model"}
    with pytest.raises(TokenizerError, match="tokenizer_path"):
        load_tokenizer(e2e_cfg)
    found = load_tokenizer(e2e_cfg, golden_dir / "v3_e2e_ctc" / "v3_e2e_ctc_tokenizer.model")
    assert isinstance(found, SentencePieceTokenizer) and found.blank_id == 256
    explicit = load_tokenizer(
        e2e_cfg, tokenizer_path=golden_dir / "v3_e2e_rnnt" / "v3_e2e_rnnt_tokenizer.model"
    )
    assert explicit.blank_id == 1024
    assert isinstance(load_tokenizer({"vocabulary": VOCAB}), CharTokenizer)


# --------------------------------------------------------------------------- words, results


def test_group_words_rules() -> None:
    pieces = ["▁при", "вет", "▁", "▁ми", "р", " ", "▁", "!"]
    frames = [0, 1, 2, 3, 4, 5, 6, 9]
    words = group_words(pieces, frames, 0.1)
    assert [w.text for w in words] == ["привет", "мир", "!"]
    assert words[0].start == pytest.approx(0.0) and words[0].end == pytest.approx(0.2)
    # a bare "▁" contributes an empty piece with its frame to the next word's span
    assert words[2].start == pytest.approx(0.6) and words[2].end == pytest.approx(1.0)
    with pytest.raises(DecodingError, match="frames"):
        group_words(["а"], [], 0.04)


def test_make_result_edges() -> None:
    tokenizer = CharTokenizer(VOCAB)
    empty = make_result([], [], tokenizer, n_samples=100, encoded_len=0)
    assert empty == Result(text="", token_ids=[], token_frames=[], words=[], frame_shift=0.0)
    silent = make_result([], [], tokenizer, n_samples=16000, encoded_len=25)
    assert silent.text == "" and silent.words == [] and silent.frame_shift == 0.04
    result = make_result(np.array([1, 2]), np.array([3, 4]), tokenizer, 16000, 25)
    assert result.token_ids == [1, 2] and all(type(i) is int for i in result.token_ids)
    assert result.words == [Word("аб", 3 * 0.04, 5 * 0.04)]
    with pytest.raises(DecodingError):
        make_result([1], [], tokenizer, 16000, 25)
    with pytest.raises(DecodingError):
        make_result([1], [0], tokenizer, 100, 0)
    with pytest.raises(DecodingError):
        make_result([], [], tokenizer, -1, 3)
