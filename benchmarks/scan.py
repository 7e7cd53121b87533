"""Decode + VAD throughput: how fast a long file is scanned for speech (no recognition).

Target (issue #3): decode + VAD at >= 200x real time on 2 cores, i.e. 10 h scanned in <= 3 min.
A long input is generated once into ``benchmarks/.cache/`` (corpus speech with its own pauses,
tiled with silence; optionally transcoded to a compressed format), then measured:

* ``decode``: :class:`gigaam_api.audio.PcmReader` alone (decoder worker → pipe → int16 blocks).
* ``decode+vad``: the pipeline's scan step — decode feeding :class:`gigaam_api.vad.SileroVad`;
  the decoder runs in its own process, so the two overlap on two cores.
* ``vad share``: the time spent inside ``SileroVad.feed`` during that run.
* ``per-window``: the package's way of calling Silero (one ONNX Runtime call per 512-sample
  window with its context, ``OnnxWrapper``-style) on the first minutes, for comparison.

Figures are reported, never asserted; the machine is shared, so run it when it is quiet::

    .venv/bin/python benchmarks/scan.py                  # 1 h WAV
    .venv/bin/python benchmarks/scan.py --hours 0.5 --format mp3

Measured on the 2-vCPU AMD EPYC dev box (shared with other work, load ~0.7), 1 h inputs:

=============  ========  ===========  =================  ===================
input          decode    decode+vad   VAD alone          10 h extrapolated
=============  ========  ===========  =================  ===================
WAV 16 kHz     3504x RT  817x RT      943x RT            44 s
MP3 64 kbit/s  1441x RT  669x RT      869x RT            54 s
=============  ========  ===========  =================  ===================

The package's per-window calling convention runs the same model at ~160x RT (VAD alone), below
the target by itself; the batched sequence graph in ``gigaam_api/vad.py`` is ~5-6x faster. Peak
RSS of the scanning process: ~95 MB, flat in the length of the input.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gigaam_api import audio  # noqa: E402
from gigaam_api.audio import decode_pcm, load_audio  # noqa: E402
from gigaam_api.constants import SAMPLE_RATE  # noqa: E402
from gigaam_api.vad import CONTEXT, WINDOW, SileroVad, default_model, model_path  # noqa: E402

SHARED = Path(os.environ.get("GIGAAM_SHARED_DIR", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".cache"
SPEECH = ("longform/longform_mix_dev_ru.wav", "longform/longform_espeak_ru.wav")
SILENCE_S = 20
TARGET_RT = 200.0


def make_input(hours: float, fmt: str) -> Path:
    """Write (once) ``hours`` of corpus speech + silence, as WAV or transcoded by PyAV."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wav = CACHE / f"scan_{hours:g}h.wav"
    if not wav.exists():
        parts = [load_audio(SHARED / "corpus" / rel) for rel in SPEECH]
        parts.append(np.zeros(SILENCE_S * SAMPLE_RATE, dtype=np.int16))
        unit = np.concatenate(parts).tobytes()
        remaining = int(hours * 3600 * SAMPLE_RATE) * 2
        tmp = wav.with_suffix(".part")
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            while remaining > 0:
                piece = unit[:remaining]
                out.writeframes(piece)
                remaining -= len(piece)
        tmp.replace(wav)
    if fmt == "wav":
        return wav
    encoded = CACHE / f"scan_{hours:g}h.{fmt}"
    if not encoded.exists():
        codec = {"mp3": "libmp3lame", "ogg": "libvorbis", "m4a": "aac"}.get(fmt, fmt)
        tmp = encoded.with_name(encoded.stem + ".part." + fmt)
        _encode(wav, tmp, codec)
        tmp.replace(encoded)
    return encoded


def _encode(wav: Path, target: Path, codec: str) -> None:
    """Transcode a 16 kHz mono WAV with PyAV (64 kb/s where the codec takes a bit rate)."""
    import av

    with wave.open(str(wav)) as source, av.open(str(target), "w") as out:
        stream = out.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = 64000
        at = 0
        while data := source.readframes(1 << 16):
            chunk = np.frombuffer(data, dtype="<i2").reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = at
            at += chunk.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _children_cpu() -> float:
    """CPU seconds of exited children plus the live decoder workers (they persist)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in audio.pool.idle_pids():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_decode(path: Path) -> tuple[float, float, float]:
    """Seconds of audio, wall seconds, decoder CPU seconds."""
    child0, start = _children_cpu(), time.perf_counter()
    with decode_pcm(path) as reader:
        for _ in reader:
            pass
    return reader.duration, time.perf_counter() - start, _children_cpu() - child0


def bench_scan(path: Path) -> dict[str, float]:
    vad = SileroVad()
    in_vad = 0.0
    regions = 0
    child0, self0, start = _children_cpu(), _self_cpu(), time.perf_counter()
    with decode_pcm(path) as reader:
        for block in reader:
            t = time.perf_counter()
            regions += len(vad.feed(block))
            in_vad += time.perf_counter() - t
        t = time.perf_counter()
        regions += len(vad.flush())
        in_vad += time.perf_counter() - t
    return {
        "audio": reader.duration,
        "wall": time.perf_counter() - start,
        "vad": in_vad,
        "self_cpu": _self_cpu() - self0,
        "decoder_cpu": _children_cpu() - child0,
        "regions": regions,
    }


def bench_per_window(path: Path, minutes: float) -> tuple[float, float]:
    """The package's calling convention: one ORT run per window (seconds of audio, wall)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
    with decode_pcm(path) as reader:
        pcm = []
        for block in reader:
            pcm.append(block)
            if sum(map(len, pcm)) >= minutes * 60 * SAMPLE_RATE:
                break
    audio = np.concatenate(pcm).astype(np.float32) / 32768
    windows = len(audio) // WINDOW
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    start = time.perf_counter()
    for i in range(windows):
        x = np.concatenate([context, audio[None, i * WINDOW : (i + 1) * WINDOW]], axis=1)
        _, state = session.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -CONTEXT:]
    return windows * WINDOW / SAMPLE_RATE, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="length of the generated input")
    parser.add_argument("--format", default="wav", choices=["wav", "mp3", "ogg", "m4a"])
    parser.add_argument("--per-window-minutes", type=float, default=2.0)
    args = parser.parse_args()

    path = make_input(args.hours, args.format)
    print(f"input: {path.name}, {path.stat().st_size / 1e6:.0f} MB, cpus: {os.cpu_count()}, "
          f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    default_model()  # build the session outside the timings

    audio_s, wall, decoder_cpu = bench_decode(path)
    print(f"decode      {audio_s / 3600:6.2f} h in {wall:7.2f} s = {audio_s / wall:7.0f}x RT "
          f"(decoder cpu {decoder_cpu:.1f} s)")  # fmt: skip

    scan = bench_scan(path)
    rt = scan["audio"] / scan["wall"]
    print(f"decode+vad  {scan['audio'] / 3600:6.2f} h in {scan['wall']:7.2f} s = {rt:7.0f}x RT "
          f"(vad {scan['audio'] / scan['vad']:.0f}x RT alone, our cpu {scan['self_cpu']:.1f} s, "
          f"decoder cpu {scan['decoder_cpu']:.1f} s, {scan['regions']:.0f} regions)")  # fmt: skip
    ten_hours = 36000 / rt
    verdict = "meets" if rt >= TARGET_RT else "MISSES"
    print(f"10 h extrapolated: {ten_hours:.0f} s ({ten_hours / 60:.1f} min) — {verdict} the "
          f"{TARGET_RT:.0f}x target")  # fmt: skip

    pw_audio, pw_wall = bench_per_window(path, args.per_window_minutes)
    print(f"per-window  {pw_audio / 60:6.1f} min in {pw_wall:6.2f} s = "
          f"{pw_audio / pw_wall:7.0f}x RT (VAD alone, one ORT call per 32 ms window)")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
