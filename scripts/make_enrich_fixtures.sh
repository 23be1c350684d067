#!/usr/bin/env bash
# Synthesize the enrich-stage speech fixtures (tests/fixtures/enrich): espeak-ng
# phrases, trimmed and resampled to 16 kHz mono by sox, laid out with known
# silences under a faint noise floor, written as FLAC with a JSON sidecar.
#
# Needs espeak-ng and sox only to regenerate, never at test time:
#   apt-get install -y espeak-ng sox libsox-fmt-all
#
# Sidecar layout: {"sample_rate", "duration_s", "voice", "segments": [{"start_s",
# "end_s", "text", "words": [{"word", "start", "end"}]}]}. Phrase edges are exact
# (sox's measured durations); words inside one phrase share its duration in
# proportion to their letter count, a stand-in for Whisper's word timestamps
# that does not use the syllable heuristic under test.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=tests/fixtures/enrich
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

RATE=16000
LEAD_S=0.3      # silence before the first phrase and after the last
NOISE_VOL=0.0003 # uniform white noise of this amplitude: about -75 dBFS RMS, so silence is never digital zero

# phrase NAME VOICE SPEED PITCH PEAK_DB TEXT -> $TMP/NAME.wav, trimmed, peak-normalised
phrase() {
  espeak-ng -v "$2" -s "$3" -p "$4" -w "$TMP/raw.wav" "$6"
  sox -R -D "$TMP/raw.wav" -c 1 -b 16 "$TMP/$1.wav" \
    silence 1 0.005 0.3% reverse silence 1 0.005 0.3% reverse rate -v "$RATE" gain -n "$5"
}

silence() { sox -R -D -n -r "$RATE" -c 1 -b 16 "$TMP/sil_$1.wav" trim 0 "$1"; }

# fixture NAME VOICE_DESC MODE GAP_S PHRASE... (phrases already made)
# MODE=segments: each phrase is its own segment; MODE=one: all phrases form one segment.
fixture() {
  local name=$1 desc=$2 mode=$3 gap=$4
  shift 4
  silence "$LEAD_S"
  silence "$gap"
  local parts=("$TMP/sil_$LEAD_S.wav") table="$TMP/$name.tsv" first=1
  : >"$table"
  for p in "$@"; do
    [[ $first == 1 ]] || parts+=("$TMP/sil_$gap.wav")
    first=0
    parts+=("$TMP/$p.wav")
    printf '%s\t%s\n' "$(soxi -D "$TMP/$p.wav")" "$(cat "$TMP/$p.txt")" >>"$table"
  done
  parts+=("$TMP/sil_$LEAD_S.wav")
  sox -R -D "${parts[@]}" "$TMP/speech.wav"
  local dur
  dur=$(soxi -D "$TMP/speech.wav")
  sox -R -D -n -r "$RATE" -c 1 -b 16 "$TMP/noise.wav" synth "$dur" whitenoise vol "$NOISE_VOL"
  sox -R -D -m -v 1 "$TMP/speech.wav" -v 1 "$TMP/noise.wav" -b 16 "$OUT/$name.flac"
  python3 - "$table" "$OUT/$name.json" "$desc" "$mode" "$LEAD_S" "$gap" "$dur" <<'PY'
import json, re, sys
table, out, desc, mode, lead, gap, dur = sys.argv[1:]
lead, gap = float(lead), float(gap)
t, phrases = lead, []
for line in open(table):
    d, text = line.rstrip("\n").split("\t")
    words = text.split()
    letters = [max(1, len(re.sub(r"[^A-Za-z]", "", w))) for w in words]
    start, span, acc = t, float(d), 0
    timed = []
    for w, n in zip(words, letters):
        ws = start + span * acc / sum(letters)
        acc += n
        timed.append({"word": w, "start": round(ws, 4), "end": round(start + span * acc / sum(letters), 4)})
    phrases.append({"start_s": round(start, 4), "end_s": round(start + span, 4), "text": text, "words": timed})
    t = start + span + gap
if mode == "one":
    phrases = [{"start_s": phrases[0]["start_s"], "end_s": phrases[-1]["end_s"],
                "text": " ".join(p["text"] for p in phrases),
                "words": [w for p in phrases for w in p["words"]]}]
json.dump({"sample_rate": 16000, "duration_s": round(float(dur), 4), "voice": desc,
           "segments": phrases}, open(out, "w"))
open(out, "a").write("\n")
PY
}

say() { phrase "$@"; printf '%s' "${*:6}" >"$TMP/$1.txt"; }

S1="The weather was calm this morning."
S2="We packed the boat and waited for the others."
S3="Nobody knew when the rain would come."

# Two voices that differ only in espeak pitch (-p 20 vs -p 80): three segments
# each, one file per segment (keeps every file under 100 KB).
for i in 1 2 3; do
  eval "text=\$S$i"
  say "low$i" en-us 160 20 -3 "$text"
  say "high$i" en-us 160 80 -3 "$text"
  fixture "voice_low_$i" "en-us -s 160 -p 20" segments 0 "low$i"
  fixture "voice_high_$i" "en-us -s 160 -p 80" segments 0 "high$i"
done

# The same sentence 15 dB apart (peaks at -3 and -18 dBFS).
say loud en-us 160 50 -3 "$S1"
say quiet en-us 160 50 -18 "$S1"
fixture loud "en-us -s 160 -p 50, peak -3 dBFS" segments 0 loud
fixture quiet "en-us -s 160 -p 50, peak -18 dBFS" segments 0 quiet

# The same sentence at 110 and 220 words per minute (2x).
say slow en-us 110 50 -3 "$S2"
say fast en-us 220 50 -3 "$S2"
fixture slow "en-us -s 110 -p 50" segments 0 slow
fixture fast "en-us -s 220 -p 50" segments 0 fast

# One segment of three phrases with 0.6 s silences between them (two pauses).
say p1 en-us 160 50 -3 "We packed the boat"
say p2 en-us 160 50 -3 "and waited for the others"
say p3 en-us 160 50 -3 "until the rain came."
fixture pauses "en-us -s 160 -p 50, 0.6 s gaps" one 0.6 p1 p2 p3

# Whispered speech: energy like speech, almost no voicing.
say whisper "en-us+whisper" 160 50 -3 "$S3"
fixture whisper "en-us+whisper -s 160 -p 50" segments 0 whisper

ls -l "$OUT"
