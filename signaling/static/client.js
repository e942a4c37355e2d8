// chatguard web client: camera, partner video, Start / Next / Stop / Report, and a status line.
// Speaks the signaling protocol in docs/protocol.md over one WebSocket; media goes peer-to-peer
// or through the relay, as the server's "route" says. Test hooks: #status[data-state][data-route],
// video#local, video#remote, and window.chatguard (this client) for getStats().

const PROTOCOL_VERSION = 1;
const ROUTE_WORDS = { direct: "direct", relay: "relayed", strict: "moderated" };
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

const $ = (selector) => document.querySelector(selector);

class ChatClient {
  constructor() {
    this.ws = null;
    this.welcome = null;
    this.wantsPartner = false;   // the user pressed Start and not Stop
    this.localStream = null;
    this.pc = null;
    this.parked = null;          // a relay connection kept between partners
    this.pair = null;
    this.route = "none";
    this.pendingCandidates = [];
    this.connectTimer = null;
    this.heartbeat = null;
    this.reconnectAttempt = 0;
    this.lastError = null;
    this.banned = false;
  }

  // --- user actions -------------------------------------------------------------------------

  async start() {
    this.wantsPartner = true;
    try {
      if (!this.localStream) {
        this.localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
        $("#local").srcObject = this.localStream;
      }
    } catch (err) {
      this.wantsPartner = false;
      this.setState("idle", "none", `Camera unavailable: ${err.message}`);
      return;
    }
    this.setState("waiting", "none", "Connecting to the server…");
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.join();
    else if (!this.ws) this.openSocket();
  }

  next() {
    this.closeCall({ keepRelay: true });
    this.send({ type: "next" });
    this.setState("waiting", "none", "Looking for someone new…");
  }

  stop() {
    this.wantsPartner = false;
    this.closeCall();
    this.closeParked();
    this.send({ type: "leave" });
    this.setState("idle", "none", "Stopped. Press Start to meet someone.");
  }

  report() {
    if (!this.pair) return;
    this.send({ type: "report", reason: "reported from the web client" });
    this.closeCall({ keepRelay: true });
    this.setState("waiting", "none", "Thanks, the stranger was reported. Looking for someone new…");
  }

  join() {
    const interests = $("#interests").value.split(",").map((s) => s.trim().toLowerCase())
      .filter((s) => s.length > 0 && s.length <= 32).slice(0, 16);
    this.send({ type: "join", interests });
  }

  // --- signaling socket ---------------------------------------------------------------------

  openSocket() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?device=${deviceId()}`);
    this.ws = ws;
    ws.onmessage = (event) => this.onMessage(JSON.parse(event.data));
    ws.onclose = () => this.onSocketClosed(ws);
  }

  onSocketClosed(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.banned) return;
    clearInterval(this.heartbeat);
    this.closeCall();
    this.closeParked();
    if (!this.wantsPartner) return;
    const delay = RECONNECT_DELAYS_MS[Math.min(this.reconnectAttempt, RECONNECT_DELAYS_MS.length - 1)];
    this.reconnectAttempt += 1;
    this.setState("waiting", "none", "Lost the server; reconnecting…");
    setTimeout(() => { if (this.wantsPartner && !this.ws) this.openSocket(); }, delay);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
    }
  }

  onMessage(msg) {
    switch (msg.type) {
      case "welcome":
        this.welcome = msg;
        this.reconnectAttempt = 0;
        this.heartbeat = setInterval(() => this.send({ type: "ping" }), msg.heartbeat_interval_s * 1000);
        if (this.wantsPartner) this.join();
        break;
      case "waiting":
        if (!this.pair) this.setState("waiting", "none", "Looking for someone…");
        break;
      case "idle":
        break;
      case "paired":
        this.startCall(msg);
        break;
      case "offer":
        if (msg.pair === this.pair) this.onOffer(msg.sdp);
        break;
      case "answer":
        if (msg.pair === this.pair) this.onAnswer(msg.sdp);
        break;
      case "candidate":
        if (msg.pair === this.pair) this.onRemoteCandidate(msg.candidate);
        break;
      case "reroute":
        if (msg.pair === this.pair) this.startCall({ pair: msg.pair, role: "offerer", route: msg.route }, msg.reason);
        break;
      case "call_ended":
        if (msg.pair === this.pair) {
          this.closeCall();
          this.setState("ended", "none", `The call could not go on: ${msg.reason}. Press Next to meet someone else.`);
        }
        break;
      case "moderation":
        if (msg.pair === this.pair) this.showModeration(msg);
        break;
      case "banned":
        this.banned = true;
        this.wantsPartner = false;
        this.closeCall();
        this.closeParked();
        this.setState("ended", "none", `Your session was ended (${msg.reason}). You can come back after ${new Date(msg.until_unix * 1000).toLocaleTimeString()}.`);
        break;
      case "partner_left":
        if (msg.pair === this.pair) {
          this.closeCall({ keepRelay: true });
          this.setState("waiting", "none", "The stranger left. Looking for someone new…");
        }
        break;
      case "error":
        this.lastError = msg;
        if (msg.code !== "stale_pair") console.warn("chatguard server refused a message:", msg);
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
    const pc = new RTCPeerConnection({ iceServers: this.welcome ? this.welcome.ice_servers : [] });
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
      if (pc.connectionState === "connected") this.onConnected(pair);
      else if (pc.connectionState === "failed") this.onCallFailed(pair);
    };
  }

  async makeOffer(pc, pair) {
    await pc.setLocalDescription(await pc.createOffer());
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
    this.send({ type: "call_state", pair, state: "connected", route: this.route });
    this.setState("connected", this.route, `Connected (${ROUTE_WORDS[this.route]}).`);
  }

  onCallFailed(pair) {
    if (this.pair !== pair || (this.pc && this.pc.connectionState === "connected")) return;
    clearTimeout(this.connectTimer);
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

  giveUp(pair) {
    if (this.pair !== pair) return;
    this.closeCall();
    this.setState("ended", "none", "Couldn't connect to this stranger. Press Next to try someone else.");
  }

  // Ends the current call. With keepRelay, a connected relay connection is parked instead of
  // closed: the server may hand the next partner over it without a new handshake.
  closeCall({ keepRelay = false } = {}) {
    clearTimeout(this.connectTimer);
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
    this.pair = null;
    this.route = "none";
    this.pendingCandidates = [];
    $("#remote").srcObject = null;
    $("#remote").dataset.blocked = "false";
    this.showNotice("#remote-notice", "");
    this.showNotice("#local-notice", "");
  }

  closeParked() {
    if (this.parked) this.parked.pc.close();
    this.parked = null;
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

  setState(state, route, text) {
    const status = $("#status");
    status.dataset.state = state;
    status.dataset.route = route;
    status.textContent = text;
    const active = state !== "idle";
    $("#start").disabled = active;
    $("#next").disabled = !active;
    $("#stop").disabled = !active;
    $("#report").disabled = state !== "connected" && state !== "connecting";
  }
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

const client = new ChatClient();
window.chatguard = client;
$("#start").addEventListener("click", () => client.start());
$("#next").addEventListener("click", () => client.next());
$("#stop").addEventListener("click", () => client.stop());
$("#report").addEventListener("click", () => client.report());
