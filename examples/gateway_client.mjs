// Stream a raw 16 kHz mono s16le file to the streamscribe gateway; print the transcript.
//
//   npm install ws
//   node examples/gateway_client.mjs --url ws://127.0.0.1:8000/stream --token TOKEN audio.raw
//
// In a browser, drop the import and use the global WebSocket with the same subprotocols:
// browsers cannot set an Authorization header, so the token rides as `bearer.<token>`.
// Frames are kept until AUDIO_ACK; after a dropped connection the client sends
// RESUME {session_id, last_seq, next_sequence} and re-sends what was not acknowledged.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const { values, positionals } = parseArgs({
  options: {
    url: { type: "string", default: "ws://127.0.0.1:8000/stream" },
    token: { type: "string" },
    speed: { type: "string", default: "1" },
  },
  allowPositionals: true,
});
const FRAME_BYTES = 3200; // 100 ms of 16 kHz s16le mono
const audio = readFileSync(positionals[0]);
const frames = [];
for (let i = 0; i < audio.length; i += FRAME_BYTES) frames.push(audio.subarray(i, i + FRAME_BYTES));
const speed = Number(values.speed);

let sessionId = null;
let lastSeq = 0; // last event seq received: where a resume continues
let acked = 0; // frames 1..acked are durably in Redis
let ended = false;
const finals = new Map();

function connect() {
  return new Promise((resolve) => {
    const ws = new WebSocket(values.url, ["streamscribe.v1", `bearer.${values.token}`]);
    let sending = false;
    ws.on("open", () => {
      ws.send(JSON.stringify(sessionId === null
        ? { type: "START_SESSION", config: { sample_rate: 16000 } }
        : { type: "RESUME", session_id: sessionId, last_seq: lastSeq, next_sequence: acked + 1 }));
    });
    ws.on("message", async (data) => {
      const m = JSON.parse(data.toString());
      if (m.seq !== null && m.seq !== undefined) lastSeq = m.seq;
      switch (m.type) {
        case "SESSION_STARTED":
        case "SESSION_RESUMED":
          sessionId = m.session_id;
          if (m.ended) { ended = true; break; }
          if (!sending) {
            sending = true;
            for (const frame of frames.slice(acked)) {
              if (ws.readyState !== WebSocket.OPEN) return;
              ws.send(frame); // binary: the sequence is implied
              await new Promise((r) => setTimeout(r, 100 / speed));
            }
            ws.send(JSON.stringify({ type: "END_SESSION" }));
          }
          break;
        case "AUDIO_ACK":
          acked = Math.max(acked, m.sequence);
          break;
        case "PARTIAL":
          process.stderr.write(`  ... ${m.segment.text}\n`);
          break;
        case "FINALIZED":
          finals.set(m.id, m.segment);
          console.log(`[${m.segment.start.toFixed(1)}s] ${m.segment.text}`);
          break;
        case "ERROR":
          process.stderr.write(`error ${m.code}: ${m.message}\n`);
          break;
        case "SESSION_ENDED":
          ended = true;
          break;
      }
    });
    ws.on("close", () => resolve());
    ws.on("error", (err) => process.stderr.write(`connection error: ${err.message}\n`));
  });
}

while (!ended) {
  await connect();
  if (!ended) await new Promise((r) => setTimeout(r, 500));
}
const text = [...finals.values()]
  .sort((a, b) => a.start - b.start)
  .map((s) => s.text.trim())
  .filter((t) => t)
  .join(" ");
console.log(`TRANSCRIPT: ${text}`);
