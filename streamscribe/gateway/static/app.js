// streamscribe live captions: microphone or file -> 16 kHz s16le frames -> WebSocket /stream.
// Plain script, no build step. URL parameters: token (required), seconds (stop after that
// much audio), speed (file mode pacing, default 4x real time), autostart=mic.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || "";
const STOP_AFTER_S = Number(params.get("seconds")) || 0;
const FILE_SPEED = Number(params.get("speed")) || 4;
const RATE = 16000;
const FRAME_SAMPLES = 1600; // 100 ms

const $ = (id) => document.getElementById(id);

// --- connection: START_SESSION / RESUME, acknowledged audio, events after last_seq ---------

const link = {
  ws: null,
  sessionId: null,
  lastSeq: 0,
  frames: new Map(), // sequence -> ArrayBuffer, kept until AUDIO_ACK
  nextSequence: 1, // sequence of the next frame captured
  sentUpTo: 0, // highest sequence sent on the current socket
  ready: false, // the current socket has SESSION_STARTED / SESSION_RESUMED
  ending: false, // no more audio: END_SESSION once every frame is sent
  endSent: false,
  ended: false,
  retries: 0,
  resumes: 0, // SESSION_RESUMED received (reconnects that picked the session up again)
};

function setIndicator(state, text) {
  const el = $("connection");
  el.className = "indicator " + state;
  el.textContent = text || state;
  el.dataset.state = state;
}

function connect() {
  if (link.ended) return;
  setIndicator(link.sessionId ? "reconnecting" : "connecting");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/stream";
  const ws = new WebSocket(url, ["streamscribe.v1", "bearer." + TOKEN]);
  ws.binaryType = "arraybuffer";
  link.ws = ws;
  link.ready = false;
  link.sentUpTo = 0;
  link.endSent = false;
  ws.onopen = () => {
    if (link.sessionId === null) {
      ws.send(JSON.stringify({
        type: "START_SESSION",
        config: { sample_rate: RATE, encoding: "pcm_s16le", channels: 1,
                  features: { diarization: true, semantics: true, prosody: true } },
      }));
    } else {
      const unacked = [...link.frames.keys()];
      ws.send(JSON.stringify({
        type: "RESUME", session_id: link.sessionId, last_seq: link.lastSeq,
        next_sequence: unacked.length ? Math.min(...unacked) : link.nextSequence,
      }));
    }
  };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (link.ws !== ws) return;
    link.ready = false;
    if (link.ended) return;
    if (event.code === 1008 || event.code === 1007 || event.code === 1009) {
      setIndicator("error", "closed: " + (event.reason || event.code));
      return;
    }
    // The gateway went away (a restart, a deploy, a slow-consumer close): resume.
    link.retries += 1;
    const delay = Math.min(2000, 100 * 2 ** Math.min(link.retries, 5));
    setIndicator("reconnecting", "reconnecting…");
    setTimeout(connect, delay);
  };
}

function onMessage(m) {
  if (typeof m.seq === "number") link.lastSeq = Math.max(link.lastSeq, m.seq);
  switch (m.type) {
    case "SESSION_STARTED":
    case "SESSION_RESUMED":
      link.sessionId = m.session_id;
      $("session").textContent = m.session_id;
      link.retries = 0;
      if (m.type === "SESSION_RESUMED") link.resumes += 1;
      if (m.ended) { finish(); return; }
      link.ready = true;
      setIndicator("connected");
      pump();
      return;
    case "AUDIO_ACK":
      link.frames.delete(m.sequence);
      return;
    case "SESSION_ENDED":
      finish();
      return;
    case "ERROR":
      if (m.stage === "gateway") $("status").textContent = m.code + ": " + m.message;
      return;
    default:
      captions.apply(m);
  }
}

function pump() {
  // Frames go out in sequence order; after a resume the unacknowledged ones first.
  if (!link.ready || link.ws.readyState !== WebSocket.OPEN) return;
  const pending = [...link.frames.keys()].filter((s) => s > link.sentUpTo).sort((a, b) => a - b);
  for (const sequence of pending) {
    link.ws.send(link.frames.get(sequence));
    link.sentUpTo = sequence;
  }
  if (link.ending && !link.endSent) {
    link.ws.send(JSON.stringify({ type: "END_SESSION" }));
    link.endSent = true;
  }
}

function pushFrame(buffer) {
  if (link.ending) return;
  link.frames.set(link.nextSequence, buffer);
  link.nextSequence += 1;
  pump();
  if (STOP_AFTER_S && (link.nextSequence - 1) * FRAME_SAMPLES >= STOP_AFTER_S * RATE) stop();
}

function finish() {
  link.ended = true;
  setIndicator("closed", "session ended");
  $("stop").disabled = true;
  document.body.dataset.ended = "true";
  if (link.ws && link.ws.readyState === WebSocket.OPEN) link.ws.close(1000);
}

// --- captions: partials replaced in place, finals appended, turns, speakers, tags ----------

const captions = {
  segments: new Map(), // segment id -> element
  turns: new Map(), // turn id -> element
  turnOf: new Map(), // segment id -> turn id

  apply(m) {
    if (m.type === "PARTIAL" || m.type === "FINALIZED") this.segment(m.segment, m.type === "FINALIZED");
    else if (m.type === "SPEAKER_TURN") this.turn(m.turn);
    else if (m.type === "ENRICHED") this.audio(m.enrichment);
    else if (m.type === "SEMANTIC_UPDATE") this.risks(m.payload);
  },

  segment(seg, final) {
    let el = this.segments.get(seg.id);
    if (!el) {
      el = document.createElement("span");
      el.className = "seg";
      el.dataset.id = seg.id;
      el.dataset.start = seg.start;
      el.innerHTML = '<span class="text"></span> ';
      this.segments.set(seg.id, el);
      this.place(el, this.turnOf.get(seg.id));
    }
    if (el.classList.contains("final")) return; // a final never changes
    el.classList.toggle("partial", !final);
    el.classList.toggle("final", final);
    el.querySelector(".text").textContent = seg.text.trim();
    if (final && !seg.text.trim()) el.remove(); // noise after partials: drop it
    if (seg.speaker_id) el.dataset.speaker = seg.speaker_id;
  },

  place(el, turnId) {
    // Segments sit in their turn's block once one names them, else in an open block.
    const block = turnId ? this.turns.get(turnId) : this.openBlock();
    const body = block.querySelector(".body");
    const start = Number(el.dataset.start);
    const after = [...body.children].find((s) => Number(s.dataset.start) > start);
    body.insertBefore(el, after || null);
  },

  openBlock() {
    let block = $("captions").querySelector(".turn.open");
    if (!block) {
      block = this.newBlock("open");
      $("captions").appendChild(block);
    }
    return block;
  },

  newBlock(cls) {
    const block = document.createElement("div");
    block.className = "turn " + cls;
    block.innerHTML = '<span class="speaker"></span><span class="body"></span><span class="tags"></span>';
    return block;
  },

  turn(turn) {
    let block = this.turns.get(turn.id);
    if (!block) {
      block = this.newBlock("");
      block.dataset.id = turn.id;
      this.turns.set(turn.id, block);
      const open = $("captions").querySelector(".turn.open");
      $("captions").insertBefore(block, open);
    }
    block.querySelector(".speaker").textContent = turn.speaker_id || "";
    block.classList.toggle("partial-turn", turn.partial);
    for (const id of turn.segment_ids) {
      this.turnOf.set(id, turn.id);
      const el = this.segments.get(id);
      if (el && el.parentElement !== block.querySelector(".body")) this.place(el, turn.id);
    }
    const open = $("captions").querySelector(".turn.open");
    if (open && !open.querySelector(".body").children.length) open.remove();
  },

  audio(enrichment) {
    const el = this.segments.get(enrichment.segment_id);
    const rendering = enrichment.audio_state && enrichment.audio_state.rendering;
    if (!el || !rendering || el.querySelector(".audio")) return;
    const tag = document.createElement("span");
    tag.className = "audio";
    tag.textContent = rendering;
    el.appendChild(tag);
  },

  risks(annotation) {
    const block = annotation.turn && this.turns.get(annotation.turn.id);
    if (!block) return;
    const tags = block.querySelector(".tags");
    tags.textContent = "";
    for (const risk of annotation.risk_tags || []) {
      const tag = document.createElement("span");
      tag.className = "risk";
      tag.textContent = risk;
      tags.appendChild(tag);
    }
  },

  finalText() {
    const finals = [...document.querySelectorAll(".seg.final")];
    finals.sort((a, b) => Number(a.dataset.start) - Number(b.dataset.start));
    return finals.map((el) => el.querySelector(".text").textContent).filter((t) => t).join(" ");
  },
};

// --- audio sources ---------------------------------------------------------------------

let source = null; // { stop() }

async function startMicrophone() {
  // A 16 kHz context lets the browser resample; the worklet resamples if it cannot. It is
  // ready before the microphone opens, so capture starts with the first sample.
  const context = new AudioContext({ sampleRate: RATE });
  await context.audioWorklet.addModule("/static/capture-worklet.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const input = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "capture-processor");
  node.port.onmessage = (event) => pushFrame(event.data);
  input.connect(node);
  source = {
    stop() {
      node.port.onmessage = null;
      input.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      context.close();
    },
  };
}

async function startFile(file) {
  // Decode in the browser, resample to 16 kHz mono, stream it at FILE_SPEED x real time.
  const decoded = await new AudioContext().decodeAudioData(await file.arrayBuffer());
  const length = Math.ceil(decoded.duration * RATE);
  const offline = new OfflineAudioContext(1, length, RATE);
  const player = offline.createBufferSource();
  player.buffer = decoded;
  player.connect(offline.destination);
  player.start();
  const samples = (await offline.startRendering()).getChannelData(0);
  let offset = 0;
  let cancelled = false;
  source = { stop() { cancelled = true; } };
  const started = performance.now();
  const tick = () => {
    if (cancelled) return;
    const due = ((performance.now() - started) / 1000) * FILE_SPEED * RATE;
    while (offset < samples.length && offset < due) {
      const piece = samples.subarray(offset, offset + FRAME_SAMPLES);
      const frame = new Int16Array(piece.length);
      for (let i = 0; i < piece.length; i++) {
        const v = Math.max(-1, Math.min(1, piece[i]));
        frame[i] = v < 0 ? v * 0x8000 : v * 0x7fff;
      }
      offset += FRAME_SAMPLES;
      pushFrame(frame.buffer);
    }
    if (offset >= samples.length) stop();
    else setTimeout(tick, 50);
  };
  tick();
}

function stop() {
  if (link.ending) return;
  link.ending = true;
  if (source) source.stop();
  $("status").textContent = "finishing…";
  pump();
}

async function begin(kind, file) {
  if (!TOKEN) {
    setIndicator("error", "no token: open this page as /?token=…");
    return;
  }
  $("mic").disabled = true;
  $("file").disabled = true;
  $("stop").disabled = false;
  connect();
  try {
    if (kind === "mic") await startMicrophone();
    else await startFile(file);
    $("status").textContent = kind === "mic" ? "listening" : "streaming " + file.name;
  } catch (err) {
    $("status").textContent = "audio failed: " + err;
  }
}

$("mic").onclick = () => begin("mic");
$("file").onchange = (event) => event.target.files[0] && begin("file", event.target.files[0]);
$("stop").onclick = stop;
if (!TOKEN) setIndicator("error", "no token: open this page as /?token=…");
if (params.get("autostart") === "mic" && TOKEN) begin("mic");
window.streamscribe = { link, captions, stop };
