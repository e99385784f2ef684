// The page of `frame-gen serve`: one WebRTC session, speech from a file, typed text or the microphone, live figures.
"use strict";

const $ = (id) => document.getElementById(id);
const CONTROLS = ["disconnect", "file", "speak", "text", "say", "mic"];
let pc = null, session = null, micSender = null, micStream = null, poller = null;
// Press to speech: from a press of Speak file or Say to the first screen refresh at which the avatar's
// audio, as the browser plays it out, carries sound (its RMS since the refresh before over SPEECH_LEVEL,
// from the receiver's totalAudioEnergy; the idle avatar's is silence). Its frames are stamped from the
// same 40 ms slots as its audio, so its mouth moves then too.
const SPEECH_LEVEL = 0.01, GIVE_UP_MS = 60000;
let pressedAt = null;

function headers(extra = {}) {
  const token = $("token").value;
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

function status(text) { $("status").textContent = text; }

async function reasonOf(response) {
  try { return (await response.json()).error || response.statusText; } catch { return response.statusText; }
}

function waitForIce(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    peer.addEventListener("icegatheringstatechange", () => { if (peer.iceGatheringState === "complete") resolve(); });
  });
}

async function connect() {
  $("connect").disabled = true;
  status("Connecting...");
  pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  micSender = pc.addTransceiver("audio", { direction: "sendrecv" }).sender;
  const stream = new MediaStream();
  pc.addEventListener("track", (event) => {
    stream.addTrack(event.track);
    $("video").srcObject = stream;
    $("video").play().catch(() => {});
  });
  pc.addEventListener("connectionstatechange", () => {
    status(`Connection ${pc.connectionState}.`);
    if (["failed", "closed"].includes(pc.connectionState)) disconnect();
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const response = await fetch("/offer", {
    method: "POST", headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) {
    status(`The server refused: ${await reasonOf(response)} (${response.status}).`);
    pc.close(); pc = null; $("connect").disabled = false;
    return;
  }
  const answer = await response.json();
  session = answer.session;
  $("session").textContent = session;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  for (const id of CONTROLS) $(id).disabled = false;
  poller = setInterval(showStats, 1000);
}

async function playedAudio() {
  let played = { energy: 0, seconds: 0 };
  (await pc.getStats()).forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "audio") {
      played = { energy: report.totalAudioEnergy || 0, seconds: report.totalSamplesDuration || 0 };
    }
  });
  return played;
}

async function timePress() {
  const pressed = performance.now();
  pressedAt = pressed;
  $("press").textContent = "...";
  let before = await playedAudio();
  while (pressedAt === pressed && pc) {
    const now = await new Promise(requestAnimationFrame);
    const after = await playedAudio();
    const seconds = after.seconds - before.seconds;
    if (seconds > 0 && Math.sqrt((after.energy - before.energy) / seconds) > SPEECH_LEVEL) {
      $("press").textContent = `${((now - pressed) / 1000).toFixed(2)} s`;
      pressedAt = null;
    } else if (now - pressed > GIVE_UP_MS) {
      $("press").textContent = "no speech heard";
      pressedAt = null;
    }
    before = after;
  }
}

async function refused(response, what) {
  pressedAt = null;
  $("press").textContent = "-";
  status(`${what}: ${await reasonOf(response)} (${response.status}).`);
}

async function speak() {
  const file = $("file").files[0];
  if (!file || !session) { status("Choose an audio file first."); return; }
  timePress();
  const response = await fetch(`/speak?session=${session}`, { method: "POST", headers: headers(), body: file });
  if (!response.ok) { await refused(response, "Not spoken"); return; }
  const duration = (await response.json()).duration;
  status(`Speaking ${file.name}${duration == null ? "" : ` (${duration.toFixed(1)} s)`}.`);
}

async function say() {
  if (!session) return;
  timePress();
  const response = await fetch(`/say?session=${session}`, {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify({ text: $("text").value }),
  });
  if (!response.ok) { await refused(response, "Not said"); return; }
  const said = await response.json();
  status(`Saying ${said.sentences} sentence${said.sentences === 1 ? "" : "s"}.`);
}

async function toggleMicrophone() {
  if (micStream) {
    await micSender.replaceTrack(null);
    micStream.getTracks().forEach((track) => track.stop());
    micStream = null;
    $("mic").textContent = "Microphone on";
    return;
  }
  try {
    micStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    await micSender.replaceTrack(micStream.getAudioTracks()[0]);
    $("mic").textContent = "Microphone off";
  } catch (error) {
    status(`No microphone: ${error.message}`);
  }
}

async function showStats() {
  if (!session) return;
  const response = await fetch(`/stats?session=${session}`, { headers: headers() });
  if (!response.ok) return;
  const stats = await response.json();
  $("latency").textContent = stats.first_frame_latency_s == null ? "-" : `${stats.first_frame_latency_s.toFixed(2)} s`;
  $("fps").textContent = stats.render_fps == null ? "-" : stats.render_fps.toFixed(1);
  $("frames").textContent = `${stats.speech_frames} / ${stats.dropped_frames}`;
}

async function disconnect() {
  clearInterval(poller);
  if (session) await fetch(`/session?session=${session}`, { method: "DELETE", headers: headers() }).catch(() => {});
  if (micStream) micStream.getTracks().forEach((track) => track.stop());
  if (pc) pc.close();
  pc = null; session = null; micStream = null;
  for (const id of CONTROLS) $(id).disabled = true;
  $("connect").disabled = false;
  status("Disconnected.");
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", disconnect);
$("speak").addEventListener("click", speak);
$("say").addEventListener("click", say);
$("text").addEventListener("keydown", (event) => { if (event.key === "Enter") say(); });
$("mic").addEventListener("click", toggleMicrophone);
