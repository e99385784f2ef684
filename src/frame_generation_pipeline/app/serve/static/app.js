// The page of `frame-gen serve`: one WebRTC session, speech from a file or the microphone, live figures.
"use strict";

const $ = (id) => document.getElementById(id);
let pc = null, session = null, micSender = null, micStream = null, poller = null;

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
  for (const id of ["disconnect", "file", "speak", "mic"]) $(id).disabled = false;
  poller = setInterval(showStats, 1000);
}

async function speak() {
  const file = $("file").files[0];
  if (!file || !session) { status("Choose an audio file first."); return; }
  const response = await fetch(`/speak?session=${session}`, { method: "POST", headers: headers(), body: file });
  status(response.ok ? `Speaking ${file.name} (${(await response.json()).duration.toFixed(1)} s).`
                      : `Not spoken: ${await reasonOf(response)} (${response.status}).`);
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
  for (const id of ["disconnect", "file", "speak", "mic"]) $(id).disabled = true;
  $("connect").disabled = false;
  status("Disconnected.");
}

$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", disconnect);
$("speak").addEventListener("click", speak);
$("mic").addEventListener("click", toggleMicrophone);
