// dagger's operator page: logs in, shows the operator's view, streams the chosen device's input over one WebSocket.
// Protocol: dagger/app/operator_web.py (views, frames, pings) and teleop_devices/browser.py (what the page sends).
"use strict";

const $ = (id) => document.getElementById(id);
const clock = () => performance.timeOrigin + performance.now(); // ms, this browser's clock
const HINTS = {
  gamepad: "Hold LB (left shoulder) to drive with the sticks; release to stop. B hands back, Back skips, Start stops, Y / X mark success / failure.",
  keyboard: "Space (or Take over) takes control, WASD / QE / RF move, Enter hands back, Tab skips, Esc stops, 1 / 0 mark.",
  phone: "Press and hold the button, then tilt the phone to drive; let go to stop.",
  xr: "Enter XR, pull the trigger and move the controller to drive; release the trigger to stop.",
};
const USED_KEYS = new Set([" ", "Tab", "Enter", "Escape", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"]);
const me = { ws: null, seq: 0, kind: "keyboard", keys: new Set(), hold: false, phone: null, xr: null,
             sendHz: 50, timer: 0, frameRobot: null, view: null, padButtons: "" };
const PAD_POLL_MS = 4; // a pad's buttons fire no events: polled this often, a change sent at once (the takeover's time)

function send(kind, fields) {
  if (me.ws && me.ws.readyState === WebSocket.OPEN) {
    me.ws.send(JSON.stringify({ kind, seq: me.seq++, t: clock(), ...fields }));
  }
}

// ---- login and the socket ----
async function login(token) {
  const r = await fetch("/login", { method: "POST", body: token, credentials: "same-origin" });
  if (!r.ok) throw new Error(r.status === 403 ? "wrong token" : `login failed (HTTP ${r.status})`);
  return r.json();
}

function showLogin(message) {
  $("console").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setLink("logged out", "bad");
}

function setLink(text, look, clickable) {
  const link = $("link");
  link.textContent = text;
  link.className = `pill ${look}`;
  link.disabled = !clickable;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  let opened = false;
  ws.onopen = () => {
    opened = true;
    me.ws = ws;
    me.seq = 0; // numbers restart with each socket
    $("login").hidden = true;
    $("console").hidden = false;
    setLink("connected", "ok");
    sendInput();
  };
  ws.onmessage = (e) => (typeof e.data === "string" ? onText(JSON.parse(e.data)) : drawFrame(e.data));
  ws.onclose = (e) => {
    if (me.ws === ws) me.ws = null;
    if (!opened) return showLogin("Log in: this run does not know this browser yet.");
    if (e.code === 4001) return setLink("opened in another tab · use here", "bad", true);
    setLink(`reconnecting… (${e.reason || e.code})`, "warn");
    setTimeout(connect, 1000);
  };
}

function onText(m) {
  if (m.kind === "ping") send("pong", { id: m.id });
  else if (m.kind === "view") render(m);
  else if (m.kind === "hello") {
    $("who").textContent = `operator ${m.operator}`;
    me.sendHz = m.send_hz;
    clearInterval(me.timer);
    me.timer = setInterval(sendInput, 1000 / me.sendHz);
  }
}

// ---- the view ----
function render(v) {
  me.view = v;
  $("title").textContent = v.title;
  const rows = v.queue.map((q) => {
    const tr = document.createElement("tr");
    if (v.serving.includes(q.robot)) tr.className = "yours";
    for (const [text, cls] of [[`${q.robot}`, ""], [q.reason, ""], [`${q.waiting_s} s`, "num"], [q.urgency.toFixed(2), "num"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  $("queue").replaceChildren(...rows);
  $("queue-empty").hidden = rows.length > 0;
  const r = v.robot;
  $("robot-title").textContent = r ? `robot ${r.id} · ${r.state} · v${r.version}` : "camera";
  $("camera-frame").className = `camera ${r ? r.look : ""}`;
  const badge = $("robot-badge");
  badge.textContent = !r || !r.yours ? (r ? "next in queue" : "") : r.in_control ? (r.nudging ? "you are nudging (the policy drives)" : "you are in control") : "offered to you";
  badge.className = `badge ${r && r.yours ? (r.in_control ? "control" : "offered") : ""}`;
  if (!r || r.id !== me.frameRobot) $("no-frame").hidden = false;
  drawTrace(v.trace, v.threshold);
  $("threshold").textContent = v.threshold === null ? "" : `threshold ${v.threshold.toFixed(4)}`;
  const d = v.device;
  $("h-label").textContent = d ? d.label : "—";
  $("h-rate").textContent = d ? `${d.rate_hz} Hz` : "—";
  $("h-age").textContent = d && d.age_ms !== null ? `${d.age_ms} ms` : "—";
  const deadman = $("h-deadman");
  deadman.textContent = !d ? "—" : !d.present ? "DEVICE LOST" : d.deadman ? "held" : "released";
  deadman.className = d && !d.present ? "bad" : d && d.deadman ? "good" : "";
  $("estop").hidden = !v.e_stopped;
  $("notice").hidden = !v.notice;
  $("notice").textContent = v.notice;
  $("storage").hidden = !v.storage[0];
  $("storage-what").textContent = v.storage[0];
  $("storage-why").textContent = v.storage[1];
}

function drawFrame(buffer) {
  const head = new DataView(buffer, 0, 8);
  const robot = head.getUint32(0), h = head.getUint16(4), w = head.getUint16(6);
  const rgb = new Uint8Array(buffer, 8);
  if (rgb.length !== w * h * 3) return;
  const image = new ImageData(w, h);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    image.data[j] = rgb[i]; image.data[j + 1] = rgb[i + 1]; image.data[j + 2] = rgb[i + 2]; image.data[j + 3] = 255;
  }
  const source = new OffscreenCanvas(w, h);
  source.getContext("2d").putImageData(image, 0, 0);
  const canvas = $("camera"), ctx = canvas.getContext("2d");
  const scale = Math.min(canvas.width / w, canvas.height / h);
  ctx.fillStyle = "#0b0c0f";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(source, (canvas.width - w * scale) / 2, (canvas.height - h * scale) / 2, w * scale, h * scale);
  me.frameRobot = robot;
  $("no-frame").hidden = true;
}

function drawTrace(values, threshold) {
  const canvas = $("trace"), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, pad = 8;
  ctx.clearRect(0, 0, W, H);
  const top = Math.max(threshold * 2 || 0, ...values) || 1;
  const y = (v) => H - pad - (Math.min(v, top) / top) * (H - 2 * pad);
  if (threshold !== null) {
    ctx.strokeStyle = "#eb5050"; ctx.setLineDash([6, 4]); ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(0, y(threshold)); ctx.lineTo(W, y(threshold)); ctx.stroke(); ctx.setLineDash([]);
  }
  if (values.length > 1) {
    ctx.strokeStyle = "#50b4f0"; ctx.lineWidth = 2; ctx.beginPath();
    values.forEach((v, i) => { const x = (i / (values.length - 1)) * W; i ? ctx.lineTo(x, y(v)) : ctx.moveTo(x, y(v)); });
    ctx.stroke();
  }
}

// ---- input ----
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, Number(v) || 0));

function readPad() {
  const pads = navigator.getGamepads ? [...navigator.getGamepads()].filter(Boolean) : [];
  const pad = pads.find((p) => p.mapping === "standard") || pads[0];
  if (!pad) return null;
  const buttons = [...pad.buttons].slice(0, 24);
  return { id: String(pad.id).replace(/[^\x20-\x7e]/g, "?").slice(0, 120),
           axes: [...pad.axes].slice(0, 8).map((a) => clamp(a, -1, 1)),
           buttons: buttons.map((b) => Boolean(b.pressed)), values: buttons.map((b) => clamp(b.value, 0, 1)) };
}

function sendInput() {
  const m = { visible: document.visibilityState === "visible", device: me.kind, keys: [...me.keys].slice(0, 16) };
  if (me.kind === "gamepad") {
    m.pad = readPad();
    me.padButtons = m.pad ? m.pad.buttons.join() : "";
  }
  if (me.kind === "phone" && me.phone) m.phone = { ...me.phone, hold: me.hold };
  if (me.kind === "xr") m.xr = me.xr;
  send("input", m);
}

function choose(kind) {
  me.kind = kind;
  for (const b of $("choose").children) b.classList.toggle("active", b.dataset.kind === kind);
  $("device-hint").textContent = HINTS[kind];
  $("hold").hidden = kind !== "phone";
  $("xr-enter").hidden = kind !== "xr";
  document.querySelector('[data-button="takeover"]').disabled = kind !== "keyboard"; // the others: hold to drive
  if (kind === "phone" && typeof DeviceOrientationEvent !== "undefined" && DeviceOrientationEvent.requestPermission) {
    DeviceOrientationEvent.requestPermission().catch(() => {}); // iOS asks once, on this tap
  }
  sendInput();
}

for (const b of $("choose").children) b.addEventListener("click", () => choose(b.dataset.kind));
for (const b of document.querySelectorAll("[data-button]")) {
  b.addEventListener("click", () => { send("button", { name: b.dataset.button }); b.blur(); });
}

function onKey(e, down) {
  if (e.target instanceof HTMLInputElement || e.key.length > 24) return;
  if (USED_KEYS.has(e.key)) e.preventDefault();
  if (down && e.repeat) return;
  down ? me.keys.add(e.key) : me.keys.delete(e.key);
  send("key", { key: e.key, down });
}
window.addEventListener("keydown", (e) => onKey(e, true));
window.addEventListener("keyup", (e) => onKey(e, false));
window.addEventListener("blur", () => { for (const key of me.keys) send("key", { key, down: false }); me.keys.clear(); });
document.addEventListener("visibilitychange", sendInput);
setInterval(() => { // a button pressed or released goes out now, not at the next send_hz tick (up to 20 ms later)
  if (me.kind !== "gamepad") return;
  const pad = readPad();
  if ((pad ? pad.buttons.join() : "") !== me.padButtons) sendInput();
}, PAD_POLL_MS);
window.addEventListener("gamepadconnected", () => { if (me.kind === "keyboard") choose("gamepad"); });

window.addEventListener("deviceorientation", (e) => {
  if (e.beta === null || e.gamma === null) return;
  me.phone = { beta: clamp(e.beta, -180, 180), gamma: clamp(e.gamma, -90, 90) };
  if (me.kind === "phone") sendInput();
});
const hold = $("hold");
const setHold = (held) => { me.hold = held; hold.classList.toggle("held", held); sendInput(); };
hold.addEventListener("pointerdown", (e) => { hold.setPointerCapture?.(e.pointerId); setHold(true); });
for (const kind of ["pointerup", "pointercancel", "lostpointercapture"]) hold.addEventListener(kind, () => setHold(false));

$("xr-enter").addEventListener("click", async () => {
  if (!navigator.xr) { $("device-hint").textContent = "This browser has no WebXR."; return; }
  const session = await navigator.xr.requestSession("immersive-vr");
  const space = await session.requestReferenceSpace("local");
  const onFrame = (time, frame) => {
    const source = [...session.inputSources].find((s) => s.gripSpace && s.handedness !== "left")
      || [...session.inputSources].find((s) => s.gripSpace);
    const pose = source && frame.getPose(source.gripSpace, space);
    const trigger = Boolean(source && source.gamepad && source.gamepad.buttons[0] && source.gamepad.buttons[0].pressed);
    const was = me.xr && me.xr.trigger;
    const p = pose && pose.transform.position;
    me.xr = p ? { pos: [clamp(p.x, -100, 100), clamp(p.y, -100, 100), clamp(p.z, -100, 100)], trigger } : null;
    if (Boolean(me.xr && me.xr.trigger) !== Boolean(was)) sendInput();
    session.requestAnimationFrame(onFrame);
  };
  session.addEventListener("end", () => { me.xr = null; sendInput(); });
  session.requestAnimationFrame(onFrame);
});

$("link").addEventListener("click", () => { setLink("connecting…", "warn"); connect(); });
$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await login($("token").value.trim());
    $("token").value = "";
    $("login-error").textContent = "";
    connect();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

async function start() {
  choose(navigator.getGamepads && [...navigator.getGamepads()].some(Boolean) ? "gamepad" : "keyboard");
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) {
    history.replaceState(null, "", location.pathname); // the token leaves the address bar and the history
    try { await login(token); } catch (err) { return showLogin(err.message); }
  }
  connect();
}
start();
