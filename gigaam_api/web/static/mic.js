// The browser's microphone as 24 kHz mono PCM16, the format the live door is told to expect
// (session.update: audio/pcm at 24000). The AudioContext runs at the device's own rate (a
// context at another rate cannot take a microphone in every browser), an AudioWorklet taps it
// (a ScriptProcessor where AudioWorklet is missing), and each block is resampled here: an
// average over the span of every output sample when going down (a simple anti-alias filter),
// linear interpolation when going up. Blocks are handed on every ~100 ms.

export const RATE = 24000;
const FLUSH_SAMPLES = RATE / 10;

/** Why the microphone cannot be used here: "insecure" (no secure context), "unsupported", or null. */
export function unavailable() {
  if (!window.isSecureContext) return "insecure";
  if (!navigator.mediaDevices?.getUserMedia || !(window.AudioContext || window.webkitAudioContext)) {
    return "unsupported";
  }
  return null;
}

/** getUserMedia's failure → "denied" | "missing" | "busy" | "other". */
export function reason(error) {
  const name = error?.name || "";
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return "denied";
  if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return "missing";
  if (name === "NotReadableError" || name === "TrackStartError" || name === "AbortError") return "busy";
  return "other";
}

/** Resamples Float32 blocks at `from` Hz to Int16 at RATE, keeping the phase across blocks. */
export class Resampler {
  constructor(from) {
    this.step = from / RATE; // input samples per output sample
    this.pos = 0; // where the next output sample starts, in input samples of `this.tail`
    this.tail = new Float32Array(0);
  }

  push(block) {
    const input = new Float32Array(this.tail.length + block.length);
    input.set(this.tail);
    input.set(block, this.tail.length);
    const out = [];
    let pos = this.pos;
    while (pos + Math.max(this.step, 1) <= input.length) {
      let value;
      if (this.step >= 1) {
        const from = Math.floor(pos);
        const to = Math.min(Math.floor(pos + this.step), input.length);
        let sum = 0;
        for (let i = from; i < to; i += 1) sum += input[i];
        value = sum / Math.max(to - from, 1);
      } else {
        const i = Math.floor(pos);
        const frac = pos - i;
        value = input[i] * (1 - frac) + (input[i + 1] ?? input[i]) * frac;
      }
      out.push(Math.max(-32768, Math.min(32767, Math.round(value * 32767))));
      pos += this.step;
    }
    const keep = Math.floor(pos);
    this.tail = input.slice(keep);
    this.pos = pos - keep;
    return Int16Array.from(out);
  }
}

/**
 * Start the microphone; `onChunk(Int16Array)` gets 24 kHz PCM16 about ten times a second.
 * Resolves to {stop()} (stops the tracks and closes the context, flushing what is left);
 * rejects with getUserMedia's error (see reason()).
 */
export async function startMic(onChunk) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
  });
  const Context = window.AudioContext || window.webkitAudioContext;
  const context = new Context();
  const resampler = new Resampler(context.sampleRate);
  let pending = [];
  let pendingLength = 0;
  const flush = () => {
    if (!pendingLength) return;
    const chunk = new Int16Array(pendingLength);
    let offset = 0;
    for (const part of pending) {
      chunk.set(part, offset);
      offset += part.length;
    }
    pending = [];
    pendingLength = 0;
    onChunk(chunk);
  };
  const take = (block) => {
    const samples = resampler.push(block);
    pending.push(samples);
    pendingLength += samples.length;
    if (pendingLength >= FLUSH_SAMPLES) flush();
  };
  const source = context.createMediaStreamSource(stream);
  let node;
  try {
    await context.audioWorklet.addModule("/web/mic-worklet.js");
    node = new AudioWorkletNode(context, "mic-tap");
    node.port.onmessage = (event) => take(event.data);
  } catch {
    node = context.createScriptProcessor(4096, 1, 1); // no AudioWorklet in this browser
    node.onaudioprocess = (event) => take(event.inputBuffer.getChannelData(0).slice(0));
  }
  source.connect(node);
  node.connect(context.destination); // a tap must be pulled; it outputs silence
  if (context.state === "suspended") await context.resume();
  return {
    async stop() {
      for (const track of stream.getTracks()) track.stop();
      source.disconnect();
      node.disconnect();
      await context.close().catch(() => {});
      flush();
    },
  };
}
