// The microphone's samples, off the audio thread: an AudioWorklet processor that hands each
// block of the first channel (Float32, at the AudioContext's rate) to the page (mic.js), which
// resamples it to 24 kHz PCM16 for the live door. Loaded with audioWorklet.addModule(), so it
// is served from this origin like every script of the page.

class MicTap extends AudioWorkletProcessor {
  process(inputs) {
    const channel = inputs[0]?.[0];
    if (channel?.length) this.port.postMessage(channel.slice(0));
    return true;
  }
}

registerProcessor("mic-tap", MicTap);
