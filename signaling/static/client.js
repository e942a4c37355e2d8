// chatguard web client: camera, partner video, text chat, Start / Next / Stop / Report, mute,
// camera off, device choice, and a status line. Speaks the signaling protocol in
// docs/protocol.md over one WebSocket; media goes peer-to-peer or through the relay, as the
// server's "route" says. Test hooks: #status[data-state][data-route], #hide-address, video#local,
// video#remote, #chat-input, #chat-send, #chat-log, #report-dialog, and window.chatguard (this
// client) for getStats(). Everything a stranger sends is shown with textContent, never as HTML.
// When the server restarts (it says "reconnect", or the socket just closes) the page connects
// again with back-off and carries on: waiting again, or keeping a call whose media still flows.

const PROTOCOL_VERSION = 1;
const ROUTE_WORDS = { direct: "direct", relay: "relayed", strict: "moderated" };
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
const DETACHED_GRACE_MS = 3000;    // a call kept without signaling may blip; then it is over
const RECOVER_RETRY_MS = 3000;     // a media connection that dropped: retry the ICE restart
const RELAY_RECOVER_AFTER_MS = 2000;
const QUALITY_EVERY_MS = 2000;
const POOR_LOSS = 0.05;            // a call losing more than 5 % of its packets is "poor"
const POOR_RTT_S = 0.5;
const COOLDOWN_NOTE_AFTER_S = 5;
const REASON_WORDS = {
  nudity: "nudity", harassment: "harassment", spam: "spam or bot", underage: "under age",
  other: "something else",
};

const $ = (selector) => document.querySelector(selector);

class ChatClient {
  constructor() {
    this.ws = null;
    this.welcome = null;
    this.settings = { require_age_confirmation: false, minimum_age: 18 };
    this.wantsPartner = false;   // the user pressed Start and not Stop
    this.localStream = null;
    this.pc = null;
    this.parked = null;          // a relay connection kept between partners
    this.pair = null;
    this.role = null;
    this.route = "none";
    this.everConnected = false;  // the current call's media connected at least once
    this.recovering = null;      // timers of a media connection being restored
    this.pendingCandidates = [];
    this.iceServers = [];          // the current call's, with its TURN credentials
    this.connectTimer = null;
    this.heartbeat = null;
    this.reconnectAttempt = 0;
    this.reconnectAfterMs = null; // the server's hint in "reconnect"
    this.detached = false;       // in a call whose signaling went with a restarted server
    this.lastError = null;
    this.banned = false;
    this.stickyText = null;      // a status worth keeping until something meaningful happens
    this.waitingSince = null;
    this.lastNextAt = null;
    this.quality = null;         // the last getStats summary: {kbps, loss, rtt, poor}
    this.lastInbound = null;
    this.micMuted = false;
    this.cameraOff = false;
  }

  // --- user actions -------------------------------------------------------------------------

  async start() {
    if (this.settings.require_age_confirmation && !$("#age-confirm").checked) {
      this.setState("idle", "none", `Please confirm that you are ${this.settings.minimum_age} or older first.`);
      $("#age-confirm").focus();
      return;
    }
    this.wantsPartner = true;
    try {
      if (!this.localStream) await this.openCamera();
    } catch (err) {
      this.wantsPartner = false;
      this.setState("idle", "none", `Camera unavailable: ${err.message}`);
      return;
    }
    $("#intro").hidden = true;
    this.setState("waiting", "none", "Connecting to the server…");
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.join();
    else if (!this.ws) this.openSocket();
  }

  next() {
    const detached = this.detached;
    this.closeCall({ keepRelay: !detached });
    if (detached) this.join();   // this server never paired us: Next means a fresh join
    else this.send({ type: "next" });
    this.lastNextAt = Date.now();
    this.setState("waiting", "none", "Looking for someone new…");
  }

  stop() {
    this.wantsPartner = false;
    this.closeCall();
    this.closeParked();
    this.send({ type: "leave" });
    this.closeCamera();
    $("#intro").hidden = false;
    this.setState("idle", "none", "Stopped, camera off. Press Start to meet someone.");
  }

  openReport() {
    if (!this.pair) return;
    for (const radio of document.querySelectorAll('input[name="report-reason"]')) radio.checked = false;
    $("#report-confirm").disabled = true;
    $("#report-dialog").hidden = false;
    document.querySelector('input[name="report-reason"]').focus();
  }

  closeReport() {
    $("#report-dialog").hidden = true;
  }

  report(reason) {
    this.closeReport();
    if (!this.pair) return;
    this.send({ type: "report", reason });
    this.closeCall({ keepRelay: true });
    this.chatNote("You reported the stranger.");
    this.setState("waiting", "none", `Thanks, the stranger was reported (${REASON_WORDS[reason]}). Looking for someone new…`, { sticky: true });
  }

  join() {
    const interests = $("#interests").value.split(",").map((s) => s.trim().toLowerCase())
      .filter((s) => s.length > 0 && s.length <= 32).slice(0, 16);
    // hide_address: this user's calls go through the relay, so no stranger learns their address
    this.send({ type: "join", interests, hide_address: $("#hide-address").checked });
  }

  sendChat() {
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text || !this.pair) return;
    this.send({ type: "chat", pair: this.pair, text });
    this.chatLine("you", text);
    input.value = "";
  }

  toggleMic() {
    this.micMuted = !this.micMuted;
    this.applyTrackStates();
  }

  toggleCamera() {
    this.cameraOff = !this.cameraOff;
    this.applyTrackStates();
  }

  // --- camera and microphone ----------------------------------------------------------------

  async openCamera() {
    const video = $("#camera-select").value;
    const audio = $("#mic-select").value;
    this.localStream = await navigator.mediaDevices.getUserMedia({
      video: video ? { deviceId: { exact: video } } : true,
      audio: audio ? { deviceId: { exact: audio } } : true,
    });
    $("#local").srcObject = this.localStream;
    this.applyTrackStates();
    await this.listDevices();
  }

  // Stop releases the camera: its light goes off, and the next Start asks for it again.
  closeCamera() {
    if (this.localStream) for (const track of this.localStream.getTracks()) track.stop();
    this.localStream = null;
    $("#local").srcObject = null;
    this.applyTrackStates();
  }

  applyTrackStates() {
    const stream = this.localStream;
    if (stream) {
      for (const track of stream.getAudioTracks()) track.enabled = !this.micMuted;
      for (const track of stream.getVideoTracks()) track.enabled = !this.cameraOff;
    }
    $("#mute").disabled = !stream;
    $("#camera").disabled = !stream;
    $("#mute").setAttribute("aria-pressed", String(this.micMuted));
    $("#camera").setAttribute("aria-pressed", String(this.cameraOff));
    $("#mute").textContent = this.micMuted ? "Unmute" : "Mute";
    $("#camera").textContent = this.cameraOff ? "Cam on" : "Cam off";
  }

  async listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [kind, selector] of [["videoinput", "#camera-select"], ["audioinput", "#mic-select"]]) {
      const select = $(selector);
      const current = this.localStream && this.localStream.getTracks()
        .find((t) => t.kind === kind.replace("input", "")) ;
      const currentId = current ? current.getSettings().deviceId : select.value;
      select.replaceChildren();
      for (const device of devices.filter((d) => d.kind === kind)) {
        const option = document.createElement("option");
        option.value = device.deviceId;
        option.textContent = device.label || kind;
        option.selected = device.deviceId === currentId;
        select.append(option);
      }
    }
  }

  // A different camera or microphone: swap the track in every connection that sends it. The
  // old device is released first: phones cannot open two cameras at once.
  async switchDevice(kind) {
    if (!this.localStream) return;
    const id = $(kind === "video" ? "#camera-select" : "#mic-select").value;
    const old = this.localStream.getTracks().find((t) => t.kind === kind);
    if (old) {
      old.stop();
      this.localStream.removeTrack(old);
    }
    let track = null;
    try {
      const fresh = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: id } } });
      track = fresh.getTracks()[0];
      this.localStream.addTrack(track);
    } catch (err) {
      this.chatNote(`Could not switch the ${kind === "video" ? "camera" : "microphone"}: ${err.message}`);
    }
    for (const pc of [this.pc, this.parked && this.parked.pc]) {
      if (!pc) continue;
      for (const transceiver of pc.getTransceivers()) {
        const sender = transceiver.sender;
        if (transceiver.receiver.track.kind === kind && !transceiver.stopped) await sender.replaceTrack(track);
      }
    }
    $("#local").srcObject = this.localStream;
    this.applyTrackStates();
  }

  // --- signaling socket ---------------------------------------------------------------------

  openSocket() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // The device id rides in the handshake's subprotocol header, not the URL (which proxies
    // log); "chatguard" is offered beside it for the server to select.
    const ws = new WebSocket(`${scheme}//${location.host}/ws`, ["chatguard", `chatguard.device.${deviceId()}`]);
    this.ws = ws;
    ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    ws.onclose = () => this.onSocketClosed(ws);
  }

  // The server went away (a restart says "reconnect" first; a crash does not). Connect again
  // after its hint, or with growing, jittered delays so that a crowd does not return at once.
  // A call whose media still flows is kept (see detach); anything else is over.
  onSocketClosed(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.banned) return;
    clearInterval(this.heartbeat);
    const flowing = this.pc && this.pc.connectionState === "connected" && !this.recovering;
    if (flowing && this.wantsPartner) this.detach();
    else this.closeCall();
    this.closeParked();
    if (!this.wantsPartner) return;
    const hinted = this.reconnectAfterMs !== null;
    const backoff = RECONNECT_DELAYS_MS[Math.min(this.reconnectAttempt, RECONNECT_DELAYS_MS.length - 1)];
    const delay = hinted ? this.reconnectAfterMs : backoff * (0.75 + Math.random() / 2);
    this.reconnectAfterMs = null;
    this.reconnectAttempt += 1;
    if (!this.detached) {
      const why = hinted ? "The server is restarting" : "Lost the server";
      this.setState("waiting", "none", `${why}; reconnecting…`);
    }
    setTimeout(() => { if (this.wantsPartner && !this.ws) this.openSocket(); }, delay);
  }

  // Signaling is gone but the media still flows (peer to peer; a relay until its worker
  // stops). The next server cannot take this pair over, so chat, Report and ICE restarts end
  // with the old one; the call lasts until the media stops or the user presses Next or
  // Stop, and then the page looks again.
  detach() {
    clearTimeout(this.connectTimer);
    this.detached = true;
    this.pair = null;
    this.chatNote("The server restarted: chat is off for the rest of this call.");
    this.setState("connected", this.route, `Connected (${ROUTE_WORDS[this.route]}). The server restarted, so chat is off for this call.`);
  }

  onDetachedState(pc, state) {
    if (state === "connected") return;
    const over = () => {
      if (this.pc !== pc || !this.detached || pc.connectionState === "connected") return;
      this.closeCall();
      if (!this.wantsPartner) return;
      this.chatNote("The call ended.");
      this.setState("waiting", "none", "The call ended. Looking for someone new…", { sticky: true });
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.join();
    };
    if (state === "disconnected") setTimeout(over, DETACHED_GRACE_MS);
    else over();
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
    }
  }

  onMessage(msg) {
    if (this.banned) return;  // what was already on its way (a pairing, say) is moot
    const current = msg.pair !== undefined && msg.pair === this.pair;
    switch (msg.type) {
      case "welcome":
        this.welcome = msg;
        this.reconnectAttempt = 0;
        $("#chat-input").maxLength = msg.chat_max_chars || 500;
        this.heartbeat = setInterval(() => this.send({ type: "ping" }), msg.heartbeat_interval_s * 1000);
        if (this.wantsPartner && !this.detached) this.join();
        break;
      case "reconnect":
        this.reconnectAfterMs = msg.after_s * 1000;
        if (this.ws) this.ws.close();
        break;
      case "waiting":
        // "the stranger left" and "thanks, reported" stay; the wait note shows the search
        if (!this.pair) this.setState("waiting", "none", this.stickyText ? null : "Looking for someone…");
        break;
      case "idle":
        break;
      case "paired":
        if (!this.localStream) break;  // sent before our Stop reached the server
        this.closeReport();
        this.clearChat();
        this.chatNote("You're now talking to a stranger. Say hi!");
        this.startCall(msg);
        break;
      case "chat":
        if (current) this.chatLine("stranger", msg.text);
        break;
      case "offer":
        if (current) this.onOffer(msg.sdp);
        break;
      case "answer":
        if (current) this.onAnswer(msg.sdp);
        break;
      case "candidate":
        if (current) this.onRemoteCandidate(msg.candidate);
        break;
      case "reroute":
        if (current) this.startCall({ pair: msg.pair, role: "offerer", route: msg.route, ice_servers: msg.ice_servers }, msg.reason);
        break;
      case "ice_servers":
        // fresh credentials while restoring the media: the next ICE restart or relay
        // connection of this call allocates with them
        if (current) {
          this.iceServers = msg.ice_servers;
          if (this.pc) this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers: msg.ice_servers });
        }
        break;
      case "partner_state":
        if (current) this.onPartnerState(msg.state);
        break;
      case "call_ended":
        if (current) {
          this.closeCall({ keepPair: true });
          this.setState("ended", "none", `The call could not go on: ${msg.reason}. Press Next to meet someone else.`, { sticky: true });
        }
        break;
      case "moderation":
        if (current) this.showModeration(msg);
        break;
      case "banned":
        this.banned = true;
        this.wantsPartner = false;
        this.closeCall();
        this.closeParked();
        this.closeCamera();
        this.setState("ended", "none", `Your session was ended (${msg.reason}). You can come back after ${new Date(msg.until_unix * 1000).toLocaleTimeString()}.`, { sticky: true });
        break;
      case "partner_left":
        if (current) {
          this.closeCall({ keepRelay: true });
          this.chatNote("The stranger left.");
          this.setState("waiting", "none", "The stranger left. Looking for someone new…", { sticky: true });
        }
        break;
      case "error":
        this.lastError = msg;
        if ((msg.code === "rate_limited" && msg.kind === "chat") || msg.code === "too_long") this.chatNote(`Not sent: ${msg.message}.`);
        else if (msg.code !== "stale_pair") console.warn("chatguard server refused a message:", msg);
        break;
      default:
        break;
    }
  }

  // --- the call -----------------------------------------------------------------------------

  // A call's media connection. On the direct route the partner answers; on relayed routes
  // the relay answers each member's offer. reroute restarts this with the same partner, and
  // "reuse" carries on over the relay connection kept from the previous call.
  startCall(msg, why = "") {
    this.closeCall();
    this.pair = msg.pair;
    this.role = msg.role;
    this.route = msg.route;
    if (msg.reuse && this.parked && this.parked.route === msg.route) {
      const parked = this.parked;
      this.parked = null;
      this.pc = parked.pc;
      this.bindConnection(parked.pc, msg.pair);
      $("#remote").srcObject = parked.stream;
      this.onConnected(msg.pair);
      return;
    }
    this.closeParked();
    const intro = why ? `${why[0].toUpperCase()}${why.slice(1)}; connecting` : "Connecting";
    this.setState("connecting", msg.route, `${intro} (${ROUTE_WORDS[msg.route]})…`);
    // TURN credentials come with each pairing or reroute, fresh and short-lived (docs/protocol.md)
    if (msg.ice_servers) this.iceServers = msg.ice_servers;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    pc.ontrack = (event) => {
      const remote = $("#remote");
      if (remote.srcObject !== event.streams[0]) remote.srcObject = event.streams[0];
    };
    this.bindConnection(pc, msg.pair);
    // A direct call gets a short timer: if it has not connected by then, the server moves it
    // to the relay (Chromium itself would take ~15 s to declare ICE failed).
    const w = this.welcome || { connect_timeout_s: 10, fallback_after_s: 5 };
    const timeoutS = msg.route === "direct" ? w.fallback_after_s : w.connect_timeout_s;
    this.connectTimer = setTimeout(() => this.onCallFailed(msg.pair), timeoutS * 1000);
    if (msg.role === "offerer") this.makeOffer(pc, msg.pair);
  }

  bindConnection(pc, pair) {
    pc.onicecandidate = (event) => {
      if (event.candidate && event.candidate.candidate) {
        this.send({ type: "candidate", pair, candidate: event.candidate.toJSON() });
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const state = pc.connectionState;
      if (this.detached) this.onDetachedState(pc, state);
      else if (state === "connected") this.onConnected(pair);
      else if (this.everConnected && (state === "disconnected" || state === "failed")) this.recover(pair, state);
      else if (state === "failed") this.onCallFailed(pair);
    };
  }

  async makeOffer(pc, pair, options = {}) {
    await pc.setLocalDescription(await pc.createOffer(options));
    if (this.pc === pc) this.send({ type: "offer", pair, sdp: pc.localDescription.sdp });
  }

  async onOffer(sdp) {
    const pc = this.pc;
    const pair = this.pair;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await this.flushCandidates(pc);
    await pc.setLocalDescription(await pc.createAnswer());
    if (this.pc === pc) this.send({ type: "answer", pair, sdp: pc.localDescription.sdp });
  }

  async onAnswer(sdp) {
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "answer", sdp });
    await this.flushCandidates(pc);
  }

  async onRemoteCandidate(candidate) {
    if (this.pc && this.pc.remoteDescription) await this.pc.addIceCandidate(candidate);
    else this.pendingCandidates.push(candidate);
  }

  async flushCandidates(pc) {
    const pending = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const candidate of pending) await pc.addIceCandidate(candidate);
  }

  onConnected(pair) {
    clearTimeout(this.connectTimer);
    this.stopRecovering();
    this.everConnected = true;
    this.send({ type: "call_state", pair, state: "connected", route: this.route });
    this.setState("connected", this.route, `Connected (${ROUTE_WORDS[this.route]}).`);
  }

  onCallFailed(pair) {
    if (this.pair !== pair || (this.pc && this.pc.connectionState === "connected")) return;
    clearTimeout(this.connectTimer);
    this.stopRecovering();
    this.send({ type: "call_state", pair, state: "failed", route: this.route });
    if (this.route === "direct") {
      // The server answers with reroute (to the relay) or call_ended; keep the pair meanwhile.
      this.setState("connecting", "direct", "A direct connection is not possible; trying the relay…");
      const w = this.welcome || { connect_timeout_s: 10 };
      this.connectTimer = setTimeout(() => this.giveUp(pair), w.connect_timeout_s * 1000);
      return;
    }
    this.giveUp(pair);
  }

  // The media connection dropped mid-call (Wi-Fi to cellular, a tunnel): restart ICE on the
  // same connection (direct calls; the offerer drives it, retrying while the network is
  // away) or open a fresh leg to the relay on the same pair, before giving up. The partner is
  // told "reconnecting" through signaling, not that the call ended.
  recover(pair, state) {
    if (this.recovering) return;
    this.send({ type: "call_state", pair, state: "reconnecting", route: this.route });
    this.setState("reconnecting", this.route, "Connection lost; reconnecting…");
    const w = this.welcome || { connect_timeout_s: 10 };
    const giveUp = setTimeout(() => {
      this.stopRecovering();
      this.onCallFailed(pair);
    }, 2 * w.connect_timeout_s * 1000);
    const attempt = () => {
      if (this.pair !== pair || !this.pc) return;
      if (this.route === "direct") {
        // one restart at a time: a new offer before the answer would orphan that answer
        const idle = this.pc.signalingState === "stable";
        if (this.role === "offerer" && idle) this.makeOffer(this.pc, pair, { iceRestart: true });
      } else if (this.pc.connectionState !== "connected") {
        const timers = this.recovering;
        this.recovering = null;           // startCall replaces the connection
        this.startCall({ pair, role: "offerer", route: this.route });
        this.everConnected = true;
        this.recovering = timers;
        this.setState("reconnecting", this.route, "Connection lost; reconnecting…");
      }
    };
    const retry = setInterval(attempt, RECOVER_RETRY_MS);
    this.recovering = { giveUp, retry };
    if (this.route === "direct" || state === "failed") attempt();
    else setTimeout(attempt, RELAY_RECOVER_AFTER_MS);
  }

  stopRecovering() {
    if (!this.recovering) return;
    clearTimeout(this.recovering.giveUp);
    clearInterval(this.recovering.retry);
    this.recovering = null;
  }

  onPartnerState(state) {
    if (state === "reconnecting") {
      this.setState("reconnecting", this.route, "The stranger's connection dropped; reconnecting…");
    } else if ($("#status").dataset.state === "reconnecting" && !this.recovering && this.pc
      && this.pc.connectionState === "connected") {
      this.setState("connected", this.route, `Connected (${ROUTE_WORDS[this.route]}).`);
    }
  }

  giveUp(pair) {
    if (this.pair !== pair) return;
    this.closeCall({ keepPair: true });
    this.setState("ended", "none", "Couldn't connect to this stranger. Press Next to try someone else.", { sticky: true });
  }

  // Ends the current call. With keepRelay, a connected relay connection is parked instead of
  // closed: the server may hand the next partner over it without a new handshake. With
  // keepPair the partner stays (the server keeps the pair until Next): chat goes on.
  closeCall({ keepRelay = false, keepPair = false } = {}) {
    clearTimeout(this.connectTimer);
    this.stopRecovering();
    const pc = this.pc;
    if (pc) {
      pc.onconnectionstatechange = null;
      const relayed = this.route === "relay" || this.route === "strict";
      if (keepRelay && relayed && pc.connectionState === "connected") {
        this.closeParked();
        this.parked = { pc, route: this.route, stream: $("#remote").srcObject };
      } else {
        pc.close();
      }
    }
    this.pc = null;
    if (!keepPair) this.pair = null;
    this.route = "none";
    this.detached = false;
    this.everConnected = false;
    this.pendingCandidates = [];
    this.lastInbound = null;
    this.quality = null;
    $("#remote").srcObject = null;
    $("#remote").dataset.blocked = "false";
    this.showNotice("#remote-notice", "");
    this.showNotice("#local-notice", "");
  }

  closeParked() {
    if (this.parked) this.parked.pc.close();
    this.parked = null;
  }

  // --- connection quality -------------------------------------------------------------------

  // Every few seconds while connected: received bitrate, packet loss and round-trip time from
  // getStats; a hint appears only when the call is poor.
  async measureQuality() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") {
      this.showQuality(null);
      return;
    }
    let bytes = 0, received = 0, lost = 0, rtt = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type === "inbound-rtp") {
        bytes += report.bytesReceived || 0;
        received += report.packetsReceived || 0;
        lost += report.packetsLost || 0;
      } else if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
        rtt = report.currentRoundTripTime || rtt;
      }
    });
    const now = performance.now();
    const last = this.lastInbound;
    this.lastInbound = { pc, now, bytes, received, lost };
    if (!last || last.pc !== pc || this.pc !== pc) return;
    const packets = (received - last.received) + (lost - last.lost);
    this.quality = judgeQuality({
      kbps: (8 * (bytes - last.bytes)) / (now - last.now),
      loss: packets > 0 ? Math.max(0, lost - last.lost) / packets : 0,
      rtt,
    });
    this.showQuality(this.quality);
  }

  showQuality(quality) {
    const hint = $("#quality");
    const poor = Boolean(quality && quality.poor);
    hint.dataset.poor = String(poor);
    hint.hidden = !poor;
    if (poor) {
      hint.textContent = `Poor connection: ${Math.round(quality.kbps)} kbit/s, ` +
        `${Math.round(quality.loss * 100)} % loss, ${Math.round(quality.rtt * 1000)} ms delay`;
    }
  }

  // --- view ---------------------------------------------------------------------------------

  // Strict route: the relay stopped a camera. The partner's video is replaced by a notice;
  // the offender is told their video is not being shown, and why.
  showModeration(msg) {
    const blocked = msg.state === "blocked";
    const label = msg.label.toLowerCase().replaceAll("_", " ");
    if (msg.who === "partner") {
      $("#remote").dataset.blocked = blocked ? "true" : "false";
      this.showNotice("#remote-notice", blocked ? `The stranger's video was stopped: it showed something not allowed here (${label}).` : "");
    } else {
      this.showNotice("#local-notice", blocked ? `Your video is not being shown: it showed something not allowed here (${label}). Strike ${msg.strikes}.` : "");
    }
  }

  showNotice(selector, text) {
    const notice = $(selector);
    notice.textContent = text;
    notice.hidden = !text;
  }

  // Text from the stranger goes in with textContent only: markup is shown, never run.
  chatLine(who, text) {
    const line = document.createElement("li");
    line.className = who;
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who === "you" ? "You:" : "Stranger:";
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    line.append(name, body);
    this.appendChat(line);
  }

  chatNote(text) {
    const line = document.createElement("li");
    line.className = "system";
    line.textContent = text;
    this.appendChat(line);
  }

  appendChat(line) {
    const log = $("#chat-log");
    log.append(line);
    while (log.children.length > 200) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  clearChat() {
    $("#chat-log").replaceChildren();
  }

  // `text` null keeps the current text. A sticky text ("the stranger left") survives later
  // waiting notices and is cleared by the next state that comes with text of its own.
  setState(state, route, text, { sticky = false } = {}) {
    const status = $("#status");
    const wasWaiting = status.dataset.state === "waiting";
    status.dataset.state = state;
    status.dataset.route = route;
    if (text !== null) {
      status.textContent = text;
      this.stickyText = sticky ? text : null;
    }
    if (state !== "waiting") this.waitingSince = null;
    else if (!wasWaiting || this.waitingSince === null) this.waitingSince = Date.now();
    this.showWaitNote();
    const active = state !== "idle";
    $("#start").disabled = active;
    $("#next").disabled = !active;
    $("#start").hidden = active;   // Start and Next share one place in the control bar
    $("#next").hidden = !active;
    $("#stop").disabled = !active;
    $("#report").disabled = !this.pair || state === "ended";
    $("#chat-input").disabled = !this.pair;
    $("#chat-send").disabled = !this.pair;
    if (!this.pair) this.closeReport();
  }

  // While waiting: how long it has been, and after Next, why it may take a while (the
  // re-pair cool-down keeps two people who just parted apart).
  showWaitNote() {
    const note = $("#wait-note");
    if (this.waitingSince === null || !this.ws) {
      note.hidden = true;
      return;
    }
    const waited = Math.floor((Date.now() - this.waitingSince) / 1000);
    let text = `Searching for ${waited} s…`;
    const cooldown = this.welcome ? this.welcome.repair_cooldown_s : 0;
    const sinceNext = this.lastNextAt === null ? Infinity : (Date.now() - this.lastNextAt) / 1000;
    if (cooldown > 0 && waited >= COOLDOWN_NOTE_AFTER_S && sinceNext < cooldown) {
      text += ` After Next you are not paired with the same person again for ${Math.round(cooldown)} s, so with few people here this can take a while.`;
    }
    note.textContent = text;
    note.hidden = false;
  }
}

// Poor: noticeable loss or delay. A low bitrate alone is not poor (a still or dark picture
// needs little).
function judgeQuality({ kbps, loss, rtt }) {
  return { kbps, loss, rtt, poor: loss > POOR_LOSS || rtt > POOR_RTT_S };
}

// A random id kept in this browser, so moderation strikes and bans follow a device across
// reconnects. It identifies nothing but this browser profile.
function deviceId() {
  let id = localStorage.getItem("chatguard-device");
  if (!id) {
    id = crypto.randomUUID();
    localStorage.setItem("chatguard-device", id);
  }
  return id;
}

// The operator's settings for the consent step (an age confirmation may be required).
async function loadSettings(client) {
  try {
    const response = await fetch("/client-settings");
    if (response.ok) client.settings = await response.json();
  } catch (err) {
    console.warn("chatguard: no client settings", err);
  }
  $("#age-line").hidden = !client.settings.require_age_confirmation;
  $("#min-age").textContent = String(client.settings.minimum_age);
}

const client = new ChatClient();
window.chatguard = client;
loadSettings(client);
$("#start").addEventListener("click", () => client.start());
$("#next").addEventListener("click", () => client.next());
$("#stop").addEventListener("click", () => client.stop());
$("#report").addEventListener("click", () => client.openReport());
$("#mute").addEventListener("click", () => client.toggleMic());
$("#camera").addEventListener("click", () => client.toggleCamera());
$("#camera-select").addEventListener("change", () => client.switchDevice("video"));
$("#mic-select").addEventListener("change", () => client.switchDevice("audio"));
$("#chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  client.sendChat();
});
$("#report-form").addEventListener("change", () => { $("#report-confirm").disabled = false; });
$("#report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const chosen = document.querySelector('input[name="report-reason"]:checked');
  if (chosen) client.report(chosen.value);
});
$("#report-cancel").addEventListener("click", () => client.closeReport());
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (!$("#report-dialog").hidden) client.closeReport();
  else if (!$("#next").disabled) client.next();
});
setInterval(() => client.showWaitNote(), 1000);
setInterval(() => client.measureQuality(), QUALITY_EVERY_MS);
