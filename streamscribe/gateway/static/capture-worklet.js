// AudioWorklet: microphone samples (any context rate) -> 16 kHz mono s16le frames of 100 ms.
const TARGET_RATE = 16000;
const FRAME_SAMPLES = 1600;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.cursor = 1; // next output sample, in input samples; 0 is the previous block's last
    this.previous = 0; // last input sample of the previous block (interpolation)
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const block = input[0];
    const channels = input.length;
    // Downmix to mono.
    const mono = new Float32Array(block.length);
    for (let c = 0; c < channels; c++) {
      const data = input[c];
      for (let i = 0; i < data.length; i++) mono[i] += data[i] / channels;
    }
    // Linear interpolation over [previous block's last sample, ...this block]; at a 16 kHz
    // context every output is an input sample (one sample later).
    const n = mono.length;
    const at = (i) => (i === 0 ? this.previous : mono[i - 1]);
    while (this.cursor < n) {
      const i = Math.floor(this.cursor);
      const frac = this.cursor - i;
      const value = at(i) + (at(i + 1) - at(i)) * frac;
      const clipped = Math.max(-1, Math.min(1, value));
      this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
      if (this.filled === FRAME_SAMPLES) {
        this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
      }
      this.cursor += this.step;
    }
    this.cursor -= n;
    this.previous = mono[n - 1];
    return true;
  }
}

registerProcessor("capture-processor", CaptureProcessor);
